//! What the repository ships for deploying: compose.yaml, the Dockerfile,
//! the templates under deploy/ and the README's examples.

mod compose_topology;
mod public_api;
mod readme_examples;
