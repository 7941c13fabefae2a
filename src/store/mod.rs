//! Storage of the control plane behind the `Store` trait.
