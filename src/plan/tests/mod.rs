//! Tests of the planning core: semantics, order, renderings and a property over random inputs.

mod disruption;
mod fixtures;
mod order;
mod ownership;
mod property;
mod render;
mod semantics;
mod snapshots;
