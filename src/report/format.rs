//! Number and text formatting for the report: presentation only, no metrics.

/// Shown where a number is absent (a cell that did not run, a metric that does not apply).
pub(crate) const NA: &str = "n/a";

pub(crate) fn fixed(x: f64, decimals: usize) -> String {
    // "-0.00" reads as a sign error in a table.
    let s = format!("{:.*}", decimals, x);
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

pub(crate) fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.filter(|v| v.is_finite())
        .map(f)
        .unwrap_or_else(|| NA.to_string())
}

/// Megabytes as a whole number: `17741`.
pub(crate) fn mb(x: f64) -> String {
    fixed(x, 0)
}

/// `~17.1 GB` (decimal GB, as the seeds write it).
pub(crate) fn gb_approx(mb: f64) -> String {
    format!("~{} GB", fixed(mb / 1000.0, 1))
}

/// Seconds in a table: two decimals like the seeds; small CPU timings keep 3 significant digits.
pub(crate) fn secs(x: f64) -> String {
    if x == 0.0 || x.abs() >= 0.1 {
        fixed(x, 2)
    } else {
        sig(x, 3)
    }
}

/// `1.00x`.
pub(crate) fn speedup(x: f64) -> String {
    format!("{}x", fixed(x, 2))
}

/// `+0 MB`, `-6509 MB`.
pub(crate) fn delta_mb(x: f64) -> String {
    let v = x.round();
    if v == 0.0 {
        "+0 MB".to_string()
    } else {
        format!("{:+.0} MB", v)
    }
}

/// Max logits diff with 6 decimals; a nonzero value too small for that is shown in exponent
/// form so it never reads as `0.000000`.
pub(crate) fn diff6(x: f64) -> String {
    if x != 0.0 && x.abs() < 5e-7 {
        format!("{:.2e}", x)
    } else {
        fixed(x, 6)
    }
}

/// Ratios such as top-1 agreement: `1.0000`.
pub(crate) fn ratio4(x: f64) -> String {
    fixed(x, 4)
}

/// `n` significant digits, plain notation for ordinary magnitudes, exponent form otherwise.
pub(crate) fn sig(x: f64, n: usize) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    if !x.is_finite() {
        return x.to_string();
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        return format!("{:.*e}", n.saturating_sub(1), x);
    }
    let decimals = (n as i32 - 1 - mag).max(0) as usize;
    fixed(x, decimals)
}

/// Compact number for prose: `0.0`, `1.0`, `0.03125`, `2.5e-7`.
pub(crate) fn short(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{:.1}", x);
    }
    let s = sig(x, 4);
    if s.contains('e') || !s.contains('.') {
        s
    } else {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// KL divergence: `0`, else exponent form (`1.20e-3`).
pub(crate) fn kl(x: f64) -> String {
    if x == 0.0 {
        "0".to_string()
    } else {
        format!("{:.2e}", x)
    }
}

/// `~180` tok/s (the seeds round throughput of long prefills); below 10 keeps one decimal.
pub(crate) fn approx(x: f64) -> String {
    if x.abs() < 10.0 {
        format!("~{}", fixed(x, 1))
    } else {
        format!("~{}", fixed(x, 0))
    }
}

/// Scaling factor: `5.0x`.
pub(crate) fn factor(x: f64) -> String {
    format!("{}x", fixed(x, 1))
}

/// Expected factor: `~4x`, `~2.4x`.
pub(crate) fn expected_factor(x: f64) -> String {
    if (x - x.round()).abs() < 0.05 {
        format!("~{}x", fixed(x.round(), 0))
    } else {
        format!("~{}x", fixed(x, 1))
    }
}

/// A period or offset in seconds without trailing zeros: `1s`, `0.05s`, `34s`.
pub(crate) fn secs_compact(x: f64) -> String {
    let s = fixed(x, 3);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}s")
}

/// Percent with no decimals: `12%`.
pub(crate) fn percent(x: f64) -> String {
    format!("{}%", fixed(x * 100.0, 0))
}

/// Context length in the seeds' title style: 8192 → `8k`, 32768 → `32k`, 128 → `128`.
pub(crate) fn ctx_short(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}k", n / 1024)
    } else {
        n.to_string()
    }
}

/// Mode id as the seeds write it: `b3_81` → `B3.81`.
pub(crate) fn mode_label(mode: &str) -> String {
    mode.to_uppercase().replacen('_', ".", 1)
}

/// Token text for a Markdown table cell: visible whitespace escapes, no table or code breakers,
/// no inline formatting. Empty text (no tokenizer) is shown as `n/a`.
pub(crate) fn md_token_text(s: &str) -> String {
    if s.is_empty() {
        return NA.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => push_md_escaped(&mut out, c),
        }
    }
    out.push('"');
    out
}

/// Text from traces or users (device names, reasons) as inert Markdown for a table cell or a
/// line: no formatting, links, raw HTML or row breaks; line breaks become spaces.
pub(crate) fn md_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c => push_md_escaped(&mut out, c),
        }
    }
    out
}

/// Text as an inline code span that is safe in a table row: a fence longer than any run of
/// backticks inside, pipes escaped (GFM splits rows on them even inside code), line breaks as
/// spaces.
pub(crate) fn md_code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ").replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// One character with every Markdown and HTML meaning escaped; other control characters as
/// visible `\u{..}` escapes.
fn push_md_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '|' => out.push_str("\\|"),
        '`' => out.push_str("\\`"),
        '*' | '_' | '[' | ']' | '#' | '~' => {
            out.push('\\');
            out.push(c);
        }
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Free text inside a Markdown table cell (reasons, reference labels): only what breaks rows.
pub(crate) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// POSIX shell quoting: bare when safe, else single quotes.
pub(crate) fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// A command line on one line when short, else broken before each `--flag` with `\`
/// continuations (the seeds' layout) — still pasteable as is.
pub(crate) fn shell_command(argv: &[String]) -> String {
    const MAX_ONE_LINE: usize = 80;
    let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    let one_line = quoted.join(" ");
    if one_line.len() <= MAX_ONE_LINE {
        return one_line;
    }
    let mut out = String::new();
    for (i, q) in quoted.iter().enumerate() {
        if i == 0 {
            out.push_str(q);
        } else if q.starts_with("--") {
            out.push_str(" \\\n  ");
            out.push_str(q);
        } else {
            out.push(' ');
            out.push_str(q);
        }
    }
    out
}

/// Distinct values in first-seen order, joined with ", ".
pub(crate) fn join_distinct<T: PartialEq + ToString>(
    values: impl IntoIterator<Item = T>,
) -> String {
    let mut seen: Vec<T> = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
