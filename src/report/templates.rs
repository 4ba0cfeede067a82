//! Template lookup: built-in templates compiled in (the binary works anywhere), each replaceable
//! by a file of the same name in the caller's templates directory.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};

/// (name, source) of every built-in template.
const BUILTIN: &[(&str, &str)] = &[
    ("b3_81.md.j2", include_str!("../../templates/b3_81.md.j2")),
    ("b3_77.md.j2", include_str!("../../templates/b3_77.md.j2")),
    ("b3_89.md.j2", include_str!("../../templates/b3_89.md.j2")),
    (
        "generic.md.j2",
        include_str!("../../templates/generic.md.j2"),
    ),
    (
        "partials/macros.md.j2",
        include_str!("../../templates/partials/macros.md.j2"),
    ),
    (
        "partials/methodology.md.j2",
        include_str!("../../templates/partials/methodology.md.j2"),
    ),
    (
        "partials/overall.md.j2",
        include_str!("../../templates/partials/overall.md.j2"),
    ),
    (
        "partials/history.md.j2",
        include_str!("../../templates/partials/history.md.j2"),
    ),
    (
        "partials/equivalence.md.j2",
        include_str!("../../templates/partials/equivalence.md.j2"),
    ),
    (
        "partials/interpretation.md.j2",
        include_str!("../../templates/partials/interpretation.md.j2"),
    ),
    (
        "partials/divergence.md.j2",
        include_str!("../../templates/partials/divergence.md.j2"),
    ),
    (
        "partials/memory.md.j2",
        include_str!("../../templates/partials/memory.md.j2"),
    ),
    (
        "partials/commands.md.j2",
        include_str!("../../templates/partials/commands.md.j2"),
    ),
];

pub(crate) const GENERIC: &str = "generic.md.j2";

fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The environment: strict undefined (a typo in a template is an error, not an empty string),
/// block tags that leave no blank lines.
pub(crate) fn environment(dir: Option<PathBuf>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_loader(move |name| load(dir.as_deref(), name));
    env
}

fn load(dir: Option<&Path>, name: &str) -> Result<Option<String>, minijinja::Error> {
    if let Some(dir) = dir {
        // Only plain relative names: a template must not reach outside its directory.
        let safe = !name.starts_with('/') && name.split('/').all(|p| p != ".." && !p.is_empty());
        let path = dir.join(name);
        if safe && path.is_file() {
            return std::fs::read_to_string(&path).map(Some).map_err(|e| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("reading {}: {e}", path.display()),
                )
            });
        }
    }
    Ok(builtin(name).map(str::to_string))
}

/// The mode's template if one exists (built in or in `dir`), else the generic one.
pub(crate) fn template_for(mode: &str, dir: Option<&Path>) -> String {
    if !mode
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return GENERIC.to_string();
    }
    let name = format!("{mode}.md.j2");
    let in_dir = dir.map(|d| d.join(&name).is_file()).unwrap_or(false);
    if in_dir || builtin(&name).is_some() {
        name
    } else {
        GENERIC.to_string()
    }
}
