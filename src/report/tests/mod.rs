//! Report rendering tests: fixtures per mode rendered to a temp dir, checked line by line.

pub(crate) mod fixtures;
mod format_tests;
mod interpret_tests;
mod render_tests;
