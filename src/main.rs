fn main() -> std::process::ExitCode {
    envform::run(std::env::args_os())
}
