//! An error as the CLI shows it: its message, code and help, and its
//! causes only where the message does not already say them. Backend errors
//! keep their cause as a source (for callers that walk the chain) and also
//! put its words in their message (events and records hold errors as one
//! line of text), so miette would print the cause twice.

use std::fmt;

use miette::Diagnostic;

/// Wraps a diagnostic for [`miette::Report`].
pub struct Shown<E>(pub E);

impl<E: fmt::Display> fmt::Display for Shown<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: fmt::Debug> fmt::Debug for Shown<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Diagnostic> std::error::Error for Shown<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let message = self.0.to_string();
        let mut source = self.0.source();
        // Skip the causes whose words the message holds already.
        while let Some(s) = source {
            if !message.contains(&s.to_string()) {
                break;
            }
            source = s.source();
        }
        source
    }
}

impl<E: Diagnostic> Diagnostic for Shown<E> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.0.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help()
    }
    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.url()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        self.0.related()
    }
    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.0.diagnostic_source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error, miette::Diagnostic)]
    #[error("cannot reach it: {0}")]
    #[diagnostic(code(t::unreachable))]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_cause_the_message_says_is_not_shown_again_but_others_are() {
        let said = Shown(Outer(std::io::Error::other("socket not found")));
        assert!(std::error::Error::source(&said).is_none());
        let text = format!("{:?}", miette::Report::new(said));
        assert_eq!(text.matches("socket not found").count(), 1, "{text}");

        #[derive(Debug, thiserror::Error, miette::Diagnostic)]
        #[error("cannot reach it")]
        struct Terse(#[source] std::io::Error);
        let unsaid = Shown(Terse(std::io::Error::other("socket not found")));
        assert!(std::error::Error::source(&unsaid).is_some());
    }
}
