//! The `nene` binary: nene's example application, served by the same one
//! call an application's own `main` makes.

mod app;

fn main() -> std::process::ExitCode {
    nene::run(app::example_app)
}
