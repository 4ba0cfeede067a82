use crate::report::format::*;

#[test]
fn token_text_is_escaped_for_tables() {
    assert_eq!(md_token_text("a|b"), r#""a\|b""#);
    assert_eq!(md_token_text("`x`"), r#""\`x\`""#);
    assert_eq!(md_token_text("line\nbreak"), r#""line\nbreak""#);
    assert_eq!(md_token_text(" the"), r#"" the""#);
    assert_eq!(md_token_text("<b>*_"), r#""&lt;b&gt;\*\_""#);
    assert_eq!(md_token_text(""), "n/a");
    assert!(!md_token_text("a\r\nb|c").contains('\n'));
}

#[test]
fn numbers_match_the_seeds() {
    assert_eq!(delta_mb(0.0), "+0 MB");
    assert_eq!(delta_mb(-0.3), "+0 MB");
    assert_eq!(delta_mb(-6509.0), "-6509 MB");
    assert_eq!(delta_mb(1292.0), "+1292 MB");
    assert_eq!(speedup(0.9918), "0.99x");
    assert_eq!(speedup(0.9959), "1.00x");
    assert_eq!(secs(34.5), "34.50");
    assert_eq!(secs(0.0523), "0.0523");
    assert_eq!(diff6(0.0), "0.000000");
    assert_eq!(diff6(1e-9), "1.00e-9");
    assert_eq!(ratio4(1.0), "1.0000");
    assert_eq!(short(0.0), "0.0");
    assert_eq!(short(1.0), "1.0");
    assert_eq!(short(0.03125), "0.03125");
    assert_eq!(approx(179.9), "~180");
    assert_eq!(factor(5.0186), "5.0x");
    assert_eq!(expected_factor(4.0), "~4x");
    assert_eq!(expected_factor(2.44), "~2.4x");
    assert_eq!(ctx_short(8192), "8k");
    assert_eq!(ctx_short(128), "128");
    assert_eq!(mode_label("b3_81"), "B3.81");
    assert_eq!(secs_compact(1.0), "1s");
    assert_eq!(secs_compact(0.05), "0.05s");
    assert_eq!(fixed(-0.001, 2), "0.00");
}

#[test]
fn commands_are_shell_quoted() {
    assert_eq!(shell_quote("--mode"), "--mode");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
    let argv: Vec<String> = [
        "tracecheck",
        "analyze",
        "--mode",
        "b3_81",
        "--traces-dir",
        "my runs/b3_81",
        "--output",
        "reports/b3_81/report-with-a-long-name.md",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        shell_command(&argv),
        "tracecheck analyze \\\n  --mode b3_81 \\\n  --traces-dir 'my runs/b3_81' \\\n  --output reports/b3_81/report-with-a-long-name.md"
    );
    assert_eq!(shell_command(&argv[..4]), "tracecheck analyze --mode b3_81");
}
