//! A systemd unit file as data: sections of ordered `Key=Value` entries, rendered and parsed
//! the way systemd.unit(5) reads them, so that no value can add a line, a `%` specifier or a
//! `$` variable expansion to a generated unit.
//!
//! Values are literal text. [`UnitFile::set`] refuses what cannot be written literally on one
//! line, [`UnitFile::set_exec`] quotes each argument of a command line for systemd's Exec
//! syntax, and [`UnitFile::render`] writes every `%` as `%%`.

/// A value that cannot be put in a unit file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    /// A section name that is not `[A-Za-z0-9-]+`.
    #[error("section name {0:?} must be letters, digits and '-'")]
    BadSection(String),
    /// A key that is not `[A-Za-z0-9-]+`.
    #[error("key {0:?} must be letters, digits and '-'")]
    BadKey(String),
    /// A control character (below 0x20, or 0x7f) in a value given to `set()`; in a command
    /// line, a NUL, which no argument of a process can carry.
    #[error("{key}= value {value:?} contains a control character")]
    ControlCharacter {
        /// The key the value was for.
        key: String,
        /// The refused value.
        value: String,
    },
    /// A value systemd would not read back as given: it strips spaces around a value, and
    /// joins a line that ends in an odd number of `\` with the next line.
    #[error("{key}= value {value:?} starts or ends with a space, or ends with '\\'")]
    NotVerbatim {
        /// The key the value was for.
        key: String,
        /// The refused value.
        value: String,
    },
    /// A command line whose executable is missing, not an absolute file path, or contains a
    /// character systemd refuses there (quotes, `\`, control characters) or would misread (`$`).
    #[error("{key}= executable {path:?} must be an absolute file path without quotes, '\\' or '$'")]
    BadExecutable {
        /// The key of the command line.
        key: String,
        /// The refused executable (empty if there was none).
        path: String,
    },
    /// An executable prefix made of something other than systemd's `-`, `@`, `:`, `+`, `!`.
    #[error("{key}= executable prefix {prefix:?} may only contain '-', '@', ':', '+' and '!'")]
    BadPrefix {
        /// The key of the command line.
        key: String,
        /// The refused prefix.
        prefix: String,
    },
}

/// Why a unit file text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line starting with `[` that is not `[Name]` with a valid section name.
    #[error("line {line}: invalid section header")]
    BadSection {
        /// 1-based line number.
        line: usize,
    },
    /// An assignment before the first section header.
    #[error("line {line}: assignment outside of a section")]
    OutsideSection {
        /// 1-based line number.
        line: usize,
    },
    /// A line that is neither a header, a comment, blank, nor `Key=Value`.
    #[error("line {line}: missing '='")]
    MissingEquals {
        /// 1-based line number.
        line: usize,
    },
    /// A `%` not doubled: a systemd specifier, which this model never writes.
    #[error("line {line}: '%' specifier (a literal '%' is written '%%')")]
    Specifier {
        /// 1-based line number.
        line: usize,
    },
    /// A key or value that [`UnitFile::set`] refuses.
    #[error("line {line}")]
    Value {
        /// 1-based line number.
        line: usize,
        /// Why the key or value was refused.
        source: InvalidValue,
    },
}

/// A unit file: sections in order of first use, each an ordered list of `(key, value)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFile {
    sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    name: String,
    /// Values as given to `set()`: `%` is doubled only by `render()`.
    entries: Vec<(String, String)>,
}

/// What systemd's `strstrip()` removes around lines, keys and values.
const WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// The characters systemd's config_parse_exec() takes as executable prefix flags.
const EXEC_PREFIXES: &str = "-@:+!";

impl UnitFile {
    /// An empty unit file.
    pub fn new() -> UnitFile {
        UnitFile::default()
    }

    /// Appends `key=value` to `section` (created at the end if new). `value` is literal text:
    /// render() escapes `%` as `%%`. Refuses control characters (anything < 0x20 and 0x7f; tab
    /// too) in key or value, and keys that are not [A-Za-z0-9-]+ (systemd's X- keys included).
    /// Also refuses values systemd would change on reading: leading or trailing spaces (it
    /// strips them) and an odd run of trailing `\` (it joins the next line to it).
    ///
    /// Not for percentages: the few settings that take one (`CPUQuota=20%`, `MemoryMax=50%`)
    /// do not resolve specifiers, so systemd would read render()'s `20%%` and ignore it.
    pub fn set(
        &mut self,
        section: &str,
        key: &str,
        value: &str,
    ) -> Result<&mut UnitFile, InvalidValue> {
        if !is_name(section) {
            return Err(InvalidValue::BadSection(section.to_owned()));
        }
        if !is_name(key) {
            return Err(InvalidValue::BadKey(key.to_owned()));
        }
        if value.chars().any(is_control) {
            let (key, value) = (key.to_owned(), value.to_owned());
            return Err(InvalidValue::ControlCharacter { key, value });
        }
        let trailing_backslashes = value.len() - value.trim_end_matches('\\').len();
        if value.starts_with(' ') || value.ends_with(' ') || trailing_backslashes % 2 == 1 {
            let (key, value) = (key.to_owned(), value.to_owned());
            return Err(InvalidValue::NotVerbatim { key, value });
        }
        self.section_mut(section)
            .entries
            .push((key.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Appends a command line setting (ExecStart=, ExecStop=, ...): each argument is quoted
    /// for systemd's Exec syntax (systemd.service(5) "Command lines"): double quotes, C escapes
    /// for `\`, `"`, and control characters (\n \t \r \a \b \f \v and \xNN), `$` doubled as `$$`
    /// so systemd does no variable expansion; `%` is doubled by render() like every value.
    /// `prefix` is systemd's executable prefix ("" or "-" for ignore-failure, "+", "@"...), put
    /// before the quoted executable path. `argv[0]` must be an absolute path.
    ///
    /// With the `:` prefix systemd expands no variables, so `$` is then written as is. The
    /// executable may not contain `$` at all: systemd expands variables in `argv[0]` but not
    /// in the path it executes. A NUL in any argument is refused (systemd rejects `\x00`).
    pub fn set_exec(
        &mut self,
        section: &str,
        key: &str,
        prefix: &str,
        argv: &[&str],
    ) -> Result<&mut UnitFile, InvalidValue> {
        if !prefix.chars().all(|c| EXEC_PREFIXES.contains(c)) {
            return Err(InvalidValue::BadPrefix {
                key: key.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        let executable = argv.first().copied().unwrap_or_default();
        if !is_executable_path(executable) {
            return Err(InvalidValue::BadExecutable {
                key: key.to_owned(),
                path: executable.to_owned(),
            });
        }
        let expand_env = !prefix.contains(':');
        let mut line = prefix.to_owned();
        for (i, arg) in argv.iter().enumerate() {
            if arg.contains('\0') {
                return Err(InvalidValue::ControlCharacter {
                    key: key.to_owned(),
                    value: (*arg).to_owned(),
                });
            }
            if i > 0 {
                line.push(' ');
            }
            push_quoted(&mut line, arg, expand_env);
        }
        // The quoted line has no control character, no edge space and ends in '"', so set()
        // accepts it; it still checks the section and key.
        self.set(section, key, &line)
    }

    /// The last value of `key` in `section`, unescaped as it was given to set() (for set_exec
    /// lines: the raw line as stored, without render()'s %-escaping).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.entries(section, key).next_back()
    }

    /// Every value of `key` in `section`, in order.
    pub fn get_all(&self, section: &str, key: &str) -> Vec<&str> {
        self.entries(section, key).collect()
    }

    /// The unit file text: `[Section]` headers separated by a blank line, `Key=Value` lines,
    /// `%` written as `%%`. Pure: no I/O. Deterministic.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, section) in self.sections.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push('[');
            out.push_str(&section.name);
            out.push_str("]\n");
            for (key, value) in &section.entries {
                out.push_str(key);
                out.push('=');
                // Settings that resolve specifiers read "%%" as '%'. Those that do not (the
                // percentages of CPUQuota=, MemoryMax=, ...) would read "%%": see set().
                out.push_str(&value.replace('%', "%%"));
                out.push('\n');
            }
        }
        out
    }

    /// Parses what render() wrote (comments `#`/`;` and blank lines skipped, `%%` back to `%`),
    /// so parse(render(u)) == u. Lines outside a section, lines without `=`, bad section headers
    /// → ParseError with the line number. No line continuations needed: a value ending in `\`
    /// is refused, as are a lone `%` and anything else set() refuses. Spaces around lines,
    /// keys and values are stripped, as systemd does.
    pub fn parse(text: &str) -> Result<UnitFile, ParseError> {
        let mut unit = UnitFile::new();
        let mut current: Option<&str> = None;
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let trimmed = raw.trim_matches(WHITESPACE);
            if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
                continue;
            }
            if let Some(header) = trimmed.strip_prefix('[') {
                let name = header.strip_suffix(']').filter(|name| is_name(name));
                let name = name.ok_or(ParseError::BadSection { line })?;
                unit.section_mut(name);
                current = Some(name);
                continue;
            }
            let section = current.ok_or(ParseError::OutsideSection { line })?;
            let (key, value) = trimmed
                .split_once('=')
                .ok_or(ParseError::MissingEquals { line })?;
            let value = unescape_percent(value.trim_matches(WHITESPACE))
                .ok_or(ParseError::Specifier { line })?;
            unit.set(section, key.trim_matches(WHITESPACE), &value)
                .map_err(|source| ParseError::Value { line, source })?;
        }
        Ok(unit)
    }

    fn section_mut(&mut self, name: &str) -> &mut Section {
        let index = match self.sections.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                self.sections.push(Section {
                    name: name.to_owned(),
                    entries: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        &mut self.sections[index]
    }

    /// The values of `key` in `section`, in order; they borrow only from `self`.
    fn entries<'a>(&'a self, section: &str, key: &str) -> impl DoubleEndedIterator<Item = &'a str> {
        self.sections
            .iter()
            .filter(move |s| s.name == section)
            .flat_map(|s| s.entries.iter())
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Quotes one argument for an Exec line (as set_exec does), public for tests and callers that
/// build Exec lines themselves. A NUL becomes `\x00`, which systemd refuses (it drops the
/// whole command line, with an error): set_exec() refuses it up front instead.
pub fn quote_exec_arg(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    push_quoted(&mut out, arg, true);
    out
}

/// Appends `arg` in double quotes. systemd unquotes and C-unescapes each word when it loads
/// the unit, then expands `%` specifiers in it, and expands `$VAR`/`${VAR}` only when the
/// command runs, on the already unquoted word: quotes do not stop that, only `$$` does.
fn push_quoted(out: &mut String, arg: &str, expand_env: bool) {
    out.push('"');
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' if expand_env => out.push_str("$$"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if is_control(c) => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A section or key name: `[A-Za-z0-9-]+`.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_control(c: char) -> bool {
    c < ' ' || c == '\x7f'
}

/// An executable systemd will run as written. systemd strips prefix flags from the unquoted
/// first word, so a leading '/' also keeps an argument from posing as a prefix; it refuses
/// quotes, '\' and control characters in the path (`string_is_safe()`) and a trailing '/'.
fn is_executable_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.ends_with('/')
        && !path
            .chars()
            .any(|c| is_control(c) || matches!(c, '"' | '\'' | '\\' | '$'))
}

/// `%%` → `%`; `None` for a lone `%` (a specifier).
fn unescape_percent(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' && chars.next() != Some('%') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
