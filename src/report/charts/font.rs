//! The vendored DejaVu Sans, registered with plotters once per process so charts render the
//! same on any host (no fontconfig, no system fonts).

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::report::error::ReportError;

/// The family name charts ask for; unique so it cannot clash with a system font name.
pub(crate) const FAMILY: &str = "tracecheck-dejavu-sans";

static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static REGISTERED: OnceLock<bool> = OnceLock::new();

pub(crate) fn ensure_registered() -> Result<(), ReportError> {
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font {
            name: "assets/fonts/DejaVuSans.ttf".to_string(),
        })
    }
}
