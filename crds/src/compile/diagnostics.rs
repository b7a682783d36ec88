//! Problems found while compiling, each tied to a resource and a field path.

use std::fmt;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The resource (or the named part of it) cannot be used.
    Error,
    /// Works, but probably not what was meant.
    Warning,
}

/// One problem with one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Resource kind: LlmAccount, ModelRoute, Secret, or a file.
    pub kind: String,
    /// Resource name.
    pub name: String,
    /// Field path inside the resource (`spec.targets[1].accounts.names[0]`).
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
    /// Where the resource came from (a file and document), when known.
    pub origin: Option<String>,
}

impl Diagnostic {
    /// Whether this problem blocks the resource.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: ")?;
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        write!(f, "{} {}", self.kind, self.name)?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Collects diagnostics for one resource at a time.
pub(crate) struct Report<'a> {
    pub(crate) out: &'a mut Vec<Diagnostic>,
    pub(crate) kind: &'static str,
    pub(crate) name: String,
}

impl Report<'_> {
    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, field.into(), message.into());
    }

    pub(crate) fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, field.into(), message.into());
    }

    fn push(&mut self, severity: Severity, field: String, message: String) {
        self.out.push(Diagnostic {
            severity,
            kind: self.kind.to_owned(),
            name: self.name.clone(),
            field,
            message,
            origin: None,
        });
    }
}
