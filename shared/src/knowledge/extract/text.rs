//! Plain text: decoding (UTF-8, UTF-16 with a BOM, else Windows-1252), telling text from binary
//! data, and normalising line endings and control characters. TXT and Markdown are kept as is.

use super::{Budget, ExtractError, FileKind, whole};
use crate::knowledge::Extracted;

/// How much of the start of a file decides whether it is text.
const SNIFF_BYTES: usize = 64 << 10;

/// Whether `b` is a byte that does not occur in text (WHATWG MIME sniffing's "binary data
/// byte": C0 controls other than tab, newlines, form feed and escape).
fn is_binary_byte(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F)
}

/// Whether the start of `bytes` reads as text: a UTF-16 byte order mark, or at most one binary
/// byte plus one in a thousand (text with a stray NUL passes; random data has one in eight).
pub(super) fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return true;
    }
    let sample = &bytes[..bytes.len().min(SNIFF_BYTES)];
    let binary = sample.iter().filter(|&&b| is_binary_byte(b)).count();
    binary <= 1 + sample.len() / 1000
}

/// Decodes text bytes to a normalised `String`; binary data is refused.
pub(super) fn decode(bytes: &[u8]) -> Result<String, ExtractError> {
    if !looks_like_text(bytes) {
        return Err(ExtractError::NotText);
    }
    let decoded = match encoding_rs::Encoding::for_bom(bytes) {
        Some((encoding, bom)) => encoding.decode_without_bom_handling(&bytes[bom..]).0,
        None => match std::str::from_utf8(bytes) {
            Ok(s) => s.into(),
            // Not UTF-8: most likely a spreadsheet or editor export in the Windows code page.
            Err(_) => {
                encoding_rs::WINDOWS_1252
                    .decode_without_bom_handling(bytes)
                    .0
            }
        },
    };
    Ok(normalize(&decoded))
}

/// Line endings to `\n`; control characters other than tab and newline removed (form feeds
/// become newlines); a leading byte order mark dropped.
pub(crate) fn normalize(s: &str) -> String {
    let s = s.strip_prefix('\u{FEFF}').unwrap_or(s);
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    // Runs of ordinary text are copied whole; only what may be a control character is looked at.
    while let Some(at) = rest.bytes().position(may_be_control) {
        out.push_str(&rest[..at]);
        let c = rest[at..].chars().next().unwrap_or_default();
        rest = &rest[at + c.len_utf8()..];
        match c {
            '\r' if rest.starts_with('\n') => {}
            '\r' | '\u{0C}' => out.push('\n'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push_str(rest);
    out
}

/// C0 controls but tab and newline, DEL, and 0xC2: the lead byte of the C1 controls (and of
/// U+00A0–U+00BF, which stay). Each starts a character.
fn may_be_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7F || b == 0xC2
}

/// TXT and Markdown: one part with the normalised text; a Markdown file's first `#` heading is
/// its title.
pub(super) fn extract(
    bytes: &[u8],
    kind: FileKind,
    budget: &mut Budget,
) -> Result<Extracted, ExtractError> {
    let text = decode(bytes)?;
    budget.add_text(text.len())?;
    let title = match kind {
        FileKind::Markdown => text
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty()),
        _ => None,
    };
    Ok(Extracted {
        title,
        parts: vec![whole(text)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_and_control_characters_are_normalised() {
        assert_eq!(
            normalize("\u{FEFF}a\r\nb\rc\0d\u{7}\te\u{0C}f"),
            "a\nb\ncd\te\nf"
        );
    }

    #[test]
    fn windows_1252_text_is_decoded() {
        assert_eq!(decode(b"caf\xe9 cr\xe8me").unwrap(), "café crème");
    }

    #[test]
    fn utf16_with_a_bom_is_decoded() {
        let bytes: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("hé\r\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        assert_eq!(decode(&bytes).unwrap(), "hé\n");
    }

    #[test]
    fn a_stray_nul_in_text_is_tolerated_but_binary_data_is_not() {
        let mut text = "plain words ".repeat(200).into_bytes();
        text[100] = 0;
        assert!(decode(&text).is_ok());
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(decode(&junk), Err(ExtractError::NotText));
    }
}
