//! `envform serve`: axum routes over the control plane. Holds no business rules.
