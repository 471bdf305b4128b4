//! Environment files: the variables a container starts with, validated, ordered and stored
//! as the `NAME=VALUE` lines `docker run --env-file` reads.
//!
//! docker's env-file format has no quoting: it left-trims each line, skips blank lines and
//! `#` comments, and takes everything after the first `=` verbatim. So a value can never
//! hold a newline (it would start a new variable), and a name can never start with `#`.
//! Both are rejected when a variable is built, not discovered when the container starts.
//! Unlike geard (`containers/environment.go`), order is kept, a name appears once, and a
//! bad line in a file is an error rather than silently dropped.

use std::fs;
use std::io;

use anyhow::Context as _;

use crate::atomic_file;
use crate::id::ContainerId;
use crate::paths::Paths;

/// geard's limits, kept so that what geard accepted, gear accepts.
const MAX_NAME: usize = 1024;
const MAX_VALUE: usize = 8192;

/// Why a variable is not acceptable. Messages name the variable, never its value: values
/// may be secrets and errors end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidVariable {
    /// The text has no `=`.
    #[error("{0:?} is not NAME=VALUE")]
    NotAnAssignment(String),
    /// The name is empty.
    #[error("a variable name may not be empty")]
    EmptyName,
    /// The name is longer than 1024 bytes.
    #[error("variable name {:?}... is longer than 1024 bytes", first_chars(.0))]
    NameTooLong(String),
    /// The name holds whitespace, `=` or a control character.
    #[error("variable name {name:?} contains {ch:?}")]
    NameCharacter {
        /// The name.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// The name starts with a digit (not a shell name) or `#` (docker reads a comment).
    #[error("variable name {name:?} may not start with {ch:?}")]
    NameStart {
        /// The name.
        name: String,
        /// Its first character.
        ch: char,
    },
    /// The value is longer than 8192 bytes.
    #[error("the value of {0} is longer than 8192 bytes")]
    ValueTooLong(String),
    /// The value holds a newline or another control character except tab.
    #[error("the value of {name} contains {ch:?}; env files cannot hold control characters")]
    ValueCharacter {
        /// The variable's name.
        name: String,
        /// The first offending character.
        ch: char,
    },
}

fn first_chars(s: &str) -> String {
    s.chars().take(32).collect()
}

/// A line of an environment file that is not a valid variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct EnvFileError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub error: InvalidVariable,
}

/// One variable. Name: non-empty, at most 1024 bytes, no whitespace, no '=', no control
/// characters, must not start with a digit or '#'; Value: at most 8192 bytes, no newline, NUL
/// or other control character except tab (docker --env-file has no quoting: a newline would
/// start a new variable).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase", try_from = "RawVariable")]
pub struct Variable {
    /// The name.
    pub name: String,
    /// The value, exactly as the container sees it.
    pub value: String,
}

/// A variable as it arrives in JSON, before validation.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVariable {
    name: String,
    #[serde(default)]
    value: String,
}

impl TryFrom<RawVariable> for Variable {
    type Error = InvalidVariable;

    fn try_from(raw: RawVariable) -> Result<Self, InvalidVariable> {
        Variable::new(raw.name, raw.value)
    }
}

impl Variable {
    /// A variable, if `name` and `value` can be written to an env file and read back unchanged.
    pub fn new(
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Variable, InvalidVariable> {
        let (name, value) = (name.into(), value.into());
        check_name(&name)?;
        if value.len() > MAX_VALUE {
            return Err(InvalidVariable::ValueTooLong(name));
        }
        if let Some(ch) = value.chars().find(|&c| c.is_control() && c != '\t') {
            return Err(InvalidVariable::ValueCharacter { name, ch });
        }
        Ok(Variable { name, value })
    }
}

fn check_name(name: &str) -> Result<(), InvalidVariable> {
    let Some(first) = name.chars().next() else {
        return Err(InvalidVariable::EmptyName);
    };
    if name.len() > MAX_NAME {
        return Err(InvalidVariable::NameTooLong(name.to_string()));
    }
    if let Some(ch) = name
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || c == '=')
    {
        return Err(InvalidVariable::NameCharacter {
            name: name.to_string(),
            ch,
        });
    }
    if first.is_ascii_digit() || first == '#' {
        return Err(InvalidVariable::NameStart {
            name: name.to_string(),
            ch: first,
        });
    }
    Ok(())
}

/// An ordered set of variables: order of first appearance kept, a later value for the same
/// name replaces the earlier (no duplicates — geard's PATCH appended duplicates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    // A Vec rather than a map: order matters to people reading the file, and environments
    // are a few dozen variables, so a linear lookup costs nothing.
    variables: Vec<Variable>,
}

impl Environment {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `v`, or replaces the value of the variable with its name where it stands.
    pub fn set(&mut self, v: Variable) {
        match self.variables.iter_mut().find(|old| old.name == v.name) {
            Some(old) => old.value = v.value,
            None => self.variables.push(v),
        }
    }

    /// Sets every variable of `other`, in its order (a PATCH).
    pub fn merge(&mut self, other: Environment) {
        for v in other.variables {
            self.set(v);
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.variables.is_empty()
    }

    /// How many variables there are.
    pub fn len(&self) -> usize {
        self.variables.len()
    }

    /// The variables, in order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// Parses env-file text a user supplies: `NAME=VALUE` per line; blank lines and `#`
    /// comments skipped; leading spaces before NAME ignored; a value wholly in double quotes
    /// (with `\"`, `\\`, `\n`, `\r` and `\t` decoded) or in single quotes is unquoted, then
    /// trimmed, as geard did. An invalid line is an error naming its 1-based number, so the
    /// user learns about it instead of losing the variable.
    pub fn parse(text: &str) -> Result<Environment, EnvFileError> {
        parse_lines(text, unquote_value)
    }

    /// Parses one CLI argument "NAME=VALUE" (same value rules as [`Environment::parse`]).
    pub fn parse_assignment(s: &str) -> Result<Variable, InvalidVariable> {
        parse_line(s, unquote_value)
    }

    /// NAME=VALUE lines, in order, each ending with a newline; what `docker run --env-file`
    /// reads (no quoting: validation guarantees none is needed).
    pub fn render(&self) -> String {
        self.variables
            .iter()
            .map(|v| format!("{}={}\n", v.name, v.value))
            .collect()
    }

    /// Reads `paths.env_file(id)`; `Ok(None)` when it does not exist.
    ///
    /// The file is read as docker reads it, values verbatim: it is what [`Environment::store`]
    /// (or geard) wrote, and unquoting it again would turn a stored `"x"` into `x`.
    pub fn load(paths: &Paths, id: &ContainerId) -> anyhow::Result<Option<Environment>> {
        let path = paths.env_file(id);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        parse_lines(&text, verbatim_value)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes it atomically to `paths.env_file(id)`, mode 0600: values may be secrets.
    pub fn store(&self, paths: &Paths, id: &ContainerId) -> anyhow::Result<()> {
        atomic_file::write(&paths.env_file(id), self.render().as_bytes(), 0o600)
    }

    /// Stages it in `batch` as [`Environment::store`] would write it; it takes effect when
    /// the batch is committed.
    pub fn stage(
        &self,
        paths: &Paths,
        id: &ContainerId,
        batch: &mut atomic_file::Batch,
    ) -> anyhow::Result<()> {
        batch.stage(&paths.env_file(id), self.render().as_bytes(), 0o600)
    }
}

fn parse_lines(text: &str, value_of: fn(&str) -> String) -> Result<Environment, EnvFileError> {
    let mut env = Environment::new();
    // An editor's byte-order mark is not part of the first name (docker strips it too).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let variable = parse_line(line, value_of).map_err(|error| EnvFileError {
            line: index + 1,
            error,
        })?;
        env.set(variable);
    }
    Ok(env)
}

fn parse_line(line: &str, value_of: fn(&str) -> String) -> Result<Variable, InvalidVariable> {
    let (name, value) = line
        .split_once('=')
        .ok_or_else(|| InvalidVariable::NotAnAssignment(line.to_string()))?;
    Variable::new(name.trim_start(), value_of(value))
}

fn verbatim_value(raw: &str) -> String {
    raw.to_string()
}

/// geard's rule (`strconv.Unquote`, then `TrimSpace`), with two deliberate differences: the
/// raw value is trimmed before unquoting too, so `A= "B"` means B; and any single-quoted
/// value is unquoted (Go only unquotes a one-character `'x'`).
fn unquote_value(raw: &str) -> String {
    let trimmed = raw.trim();
    let unquoted = unquote_double(trimmed).or_else(|| unquote_single(trimmed));
    match unquoted {
        Some(value) => value.trim().to_string(),
        None => trimmed.to_string(),
    }
}

/// The inside of `"..."` with escapes decoded; `None` when `s` is not one such string (an
/// unknown escape or a bare `"` inside, as Go decides), and then the value is kept raw.
fn unquote_double(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => out.push(match chars.next()? {
                '"' => '"',
                '\\' => '\\',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                _ => return None,
            }),
            c => out.push(c),
        }
    }
    Some(out)
}

fn unquote_single(s: &str) -> Option<String> {
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.to_string())
}

/// geard's JSON for an environment: `{"Variables":[{"Name":"A","Value":"B"}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentBody {
    /// The variables, in order.
    #[serde(default)]
    pub variables: Vec<Variable>,
}

impl From<EnvironmentBody> for Environment {
    /// Duplicate names in the body collapse, the last value winning.
    fn from(body: EnvironmentBody) -> Environment {
        let mut env = Environment::new();
        for v in body.variables {
            env.set(v);
        }
        env
    }
}

impl From<Environment> for EnvironmentBody {
    fn from(env: Environment) -> EnvironmentBody {
        EnvironmentBody {
            variables: env.variables,
        }
    }
}

#[cfg(test)]
mod tests;
