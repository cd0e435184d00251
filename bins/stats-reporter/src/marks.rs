//! Status marks in human output: emoji on a terminal, plain words when stdout is piped or
//! redirected, so scripts, logs and CI output never have to match pictographs.

use std::io::IsTerminal;

/// Which kind of marks to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    emoji: bool,
}

impl Marks {
    /// Emoji when stdout is a terminal, words otherwise.
    pub(crate) fn for_stdout() -> Self {
        Self {
            emoji: std::io::stdout().is_terminal(),
        }
    }

    /// Always emoji (`true`) or always words.
    #[cfg(test)]
    pub(crate) fn emoji(emoji: bool) -> Self {
        Self { emoji }
    }

    /// `emoji` on a terminal, `plain` otherwise.
    pub(crate) fn pick(self, emoji: &'static str, plain: &'static str) -> &'static str {
        if self.emoji { emoji } else { plain }
    }
}

/// Whether `text` holds a pictograph (emoji, their variation selector, or the ℹ sign).
#[cfg(test)]
pub(crate) fn has_emoji(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(u32::from(c), 0x2139 | 0x2600..=0x27BF | 0xFE0F | 0x1F300..=0x1FAFF))
}
