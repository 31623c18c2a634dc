//! Diagnostics for `centralino check`: every problem of a dialplan, each with file, line, column
//! and an optional hint.

use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is: errors refuse the plan, warnings only inform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The plan is refused.
    Error,
    /// The plan is accepted, but something looks wrong (e.g. hours with nobody on duty).
    Warning,
}

/// One problem found in a dialplan, located by 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file name given to [`crate::compile`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, severity, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the diagnostics of a refused plan (errors first in file order, then warnings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, diagnostic) in self.0.iter().enumerate() {
            if idx > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics while compiling and turns byte spans into line and column.
pub(crate) struct Sink<'s> {
    file: String,
    source: &'s str,
    line_starts: Vec<usize>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(file: &str, source: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(idx, _)| idx + 1));
        Sink {
            file: file.to_owned(),
            source,
            line_starts,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// 1-based (line, column) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line_idx = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let line_start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        let col = self
            .source
            .get(line_start..offset)
            .map_or(offset - line_start, |s| s.chars().count());
        (line_idx + 1, col + 1)
    }

    /// `file:line` of a span, used in explanations ("which rule").
    pub(crate) fn origin(&self, span: &Range<usize>) -> String {
        let line = self
            .line_starts
            .partition_point(|&start| start <= span.start)
            .max(1);
        format!("{}:{}", self.file, line)
    }

    fn push(
        &mut self,
        severity: Severity,
        span: &Range<usize>,
        message: String,
        hint: Option<String>,
    ) {
        let (line, col) = self.line_col(span.start);
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            col,
            message,
            hint,
        });
    }

    pub(crate) fn error(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, span, message.into(), hint);
    }

    pub(crate) fn warning(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Warning, span, message.into(), hint);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Errors first, each group sorted by position, so output is stable.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diagnostics
            .sort_by_key(|d| (d.severity, d.line, d.col));
        self.diagnostics
    }
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word_lower = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&word_lower, &candidate.to_lowercase());
        let limit = (word.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// "did you mean `x`?" when something is close, else a list of what exists.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str> + Clone,
) -> Option<String> {
    if let Some(best) = closest(word, candidates.clone()) {
        return Some(format!("did you mean `{best}`?"));
    }
    let all: Vec<&str> = candidates.into_iter().collect();
    if all.is_empty() || all.len() > 12 {
        None
    } else {
        Some(format!("expected one of: {}", all.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_format_is_file_line_col_severity_message_hint() {
        let mut sink = Sink::new("plan.toml", "a = 1\nbé = 2\n");
        sink.error(&(9..10), "bad", Some("fix it".to_owned()));
        sink.warning(&(0..1), "meh", None);
        let all = Diagnostics(sink.into_sorted());
        assert_eq!(
            all.to_string(),
            "plan.toml:2:3: error: bad\n  hint: fix it\nplan.toml:1:1: warning: meh"
        );
        assert_eq!(all.errors().count(), 1);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("stratgy", ["strategy", "members"]),
            Some("strategy")
        );
        assert_eq!(closest("xyz", ["strategy", "members"]), None);
        assert_eq!(
            suggest("zz", ["a", "b"]).as_deref(),
            Some("expected one of: a, b")
        );
    }
}
