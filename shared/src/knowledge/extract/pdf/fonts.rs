//! Fonts as the text layer needs them: what each character code of a shown string means in
//! Unicode, and how far it moves the pen.
//!
//! A font's `/ToUnicode` map comes first (it is what the producer wrote for copy and paste,
//! and the only meaning a subset Type 0 font's glyph ids have); the `/Encoding` (a base
//! encoding and its `/Differences`) answers for the codes it does not map. Both are read with
//! lopdf's own parsers. A font is read once per document, not once per page.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use lopdf::{Dictionary, Document, Encoding, Object, ObjectId};

pub(super) struct Font {
    codes: Codes,
}

enum Codes {
    /// Simple fonts (Type 1, TrueType, Type 3): one byte per glyph, every answer made up front.
    OneByte {
        text: Vec<Box<str>>,
        /// Widths by code, per unit of font size.
        widths: Vec<f64>,
        /// Whether every printable ASCII code means its own character.
        ascii_as_is: bool,
    },
    /// Type 0 (composite) fonts: two bytes per glyph, the CID being the code (Identity-H, the
    /// encoding of nearly every embedded composite font).
    TwoByte {
        unicode: TwoByteUnicode,
        /// Text of the codes met so far.
        seen: RefCell<HashMap<u16, Box<str>>>,
        /// Widths by CID, per unit of font size.
        widths: Vec<f64>,
        default_width: f64,
    },
}

enum TwoByteUnicode {
    /// The font's `/ToUnicode` map (always lopdf's `UnicodeMapEncoding`: lopdf does not export
    /// the map's own type).
    Map(Encoding<'static>),
    /// A predefined UCS-2 CMap (`Uni…-UCS2-H`, `Uni…-UTF16-H`): the code is the character.
    Ucs2,
    Unknown,
}

/// How a shown string's glyphs move the pen: per-glyph spacing in text space units.
pub(super) struct Spacing {
    pub size: f64,
    pub char_spacing: f64,
    /// Added after the single-byte code 32.
    pub word_spacing: f64,
}

impl Font {
    /// Appends the text of `bytes` (a string shown in this font) to `out` and returns how
    /// far the glyphs move the pen, in unscaled text space units.
    pub fn decode(&self, bytes: &[u8], spacing: &Spacing, out: &mut String) -> f64 {
        match &self.codes {
            Codes::OneByte {
                text,
                widths,
                ascii_as_is,
            } => {
                let widths: f64 = bytes.iter().map(|&code| widths[code as usize]).sum();
                let spaces = bytes.iter().filter(|&&code| code == b' ').count() as f64;
                match std::str::from_utf8(bytes) {
                    // Most strings of most simple fonts: printable ASCII meaning itself.
                    Ok(ascii)
                        if *ascii_as_is && bytes.iter().all(|&b| (0x20..0x7F).contains(&b)) =>
                    {
                        out.push_str(ascii)
                    }
                    _ => {
                        for &code in bytes {
                            out.push_str(&text[code as usize]);
                        }
                    }
                }
                widths * spacing.size
                    + bytes.len() as f64 * spacing.char_spacing
                    + spaces * spacing.word_spacing
            }
            Codes::TwoByte {
                unicode,
                seen,
                widths,
                default_width,
            } => {
                let mut seen = seen.borrow_mut();
                let mut advance = 0.0;
                for pair in bytes.chunks(2) {
                    let code = match *pair {
                        [high, low] => u16::from_be_bytes([high, low]),
                        [odd] => u16::from(odd),
                        _ => continue,
                    };
                    out.push_str(
                        seen.entry(code)
                            .or_insert_with(|| unicode.text(code).into_boxed_str()),
                    );
                    let width = widths.get(code as usize).copied().unwrap_or(*default_width);
                    advance += width * spacing.size + spacing.char_spacing;
                }
                advance
            }
        }
    }
}

impl TwoByteUnicode {
    fn text(&self, code: u16) -> String {
        match self {
            TwoByteUnicode::Map(Encoding::UnicodeMapEncoding(map)) => map
                .get(u32::from(code), 2)
                .map(|units| spelled_out(String::from_utf16_lossy(&units)))
                .unwrap_or_default(),
            TwoByteUnicode::Ucs2 => char::from_u32(u32::from(code))
                .map(String::from)
                .unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// Typographic ligatures (ﬁ, ﬂ, ﬀ…) as the letters they join: "conﬁgure" would match neither
/// a search for "configure" nor the embedding model's vocabulary.
fn spelled_out(text: String) -> String {
    if !text.contains(|c| ('\u{FB00}'..='\u{FB06}').contains(&c)) {
        return text;
    }
    text.chars()
        .map(|c| match c {
            '\u{FB00}' => "ff".to_owned(),
            '\u{FB01}' => "fi".to_owned(),
            '\u{FB02}' => "fl".to_owned(),
            '\u{FB03}' => "ffi".to_owned(),
            '\u{FB04}' => "ffl".to_owned(),
            '\u{FB05}' | '\u{FB06}' => "st".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// The fonts of one document, each read the first time a page selects it.
pub(super) struct Fonts<'d> {
    doc: &'d Document,
    read: HashMap<ObjectId, Rc<Font>>,
}

impl<'d> Fonts<'d> {
    pub fn new(doc: &'d Document) -> Self {
        Fonts {
            doc,
            read: HashMap::new(),
        }
    }

    /// The font a resource dictionary's `/Font` entry holds as `value` (a reference, read
    /// once, or a dictionary written in place).
    pub fn get(&mut self, value: &Object) -> Option<Rc<Font>> {
        match value {
            Object::Reference(id) => {
                if let Some(font) = self.read.get(id) {
                    return Some(font.clone());
                }
                let dict = self.doc.get_dictionary(*id).ok()?;
                let font = Rc::new(read_font(self.doc, dict));
                self.read.insert(*id, font.clone());
                Some(font)
            }
            Object::Dictionary(dict) => Some(Rc::new(read_font(self.doc, dict))),
            _ => None,
        }
    }
}

fn read_font(doc: &Document, font: &Dictionary) -> Font {
    let subtype = font.get(b"Subtype").and_then(Object::as_name).ok();
    let codes = if subtype == Some(b"Type0".as_slice()) {
        two_byte(doc, font)
    } else {
        one_byte(doc, font)
    };
    Font { codes }
}

fn one_byte(doc: &Document, font: &Dictionary) -> Codes {
    let unicode = to_unicode(doc, font);
    // lopdf reads `/Encoding` (base encoding and differences; StandardEncoding without one).
    let encoding = font.get_font_encoding(doc).ok();
    let text: Vec<Box<str>> = (0..=255u8)
        .map(|code| {
            let mapped = match &unicode {
                Some(Encoding::UnicodeMapEncoding(map)) => map
                    .get(u32::from(code), 1)
                    .map(|units| String::from_utf16_lossy(&units)),
                _ => None,
            };
            mapped
                .or_else(|| {
                    let mut text = String::new();
                    let encoding = encoding.as_ref()?;
                    encoding.write_to_string(&[code], &mut text).ok()?;
                    Some(text)
                })
                .map(spelled_out)
                .unwrap_or_default()
                .into_boxed_str()
        })
        .collect();
    let ascii_as_is =
        (0x20..0x7F).all(|code: u8| *text[code as usize] == *(code as char).to_string());
    Codes::OneByte {
        text,
        widths: simple_widths(doc, font),
        ascii_as_is,
    }
}

fn two_byte(doc: &Document, font: &Dictionary) -> Codes {
    let encoding = font.get(b"Encoding").and_then(Object::as_name).ok();
    let unicode = match to_unicode(doc, font) {
        Some(map) => TwoByteUnicode::Map(map),
        None if encoding
            .is_some_and(|name| name.ends_with(b"-UCS2-H") || name.ends_with(b"-UTF16-H")) =>
        {
            TwoByteUnicode::Ucs2
        }
        None => TwoByteUnicode::Unknown,
    };
    let descendant = font
        .get_deref(b"DescendantFonts", doc)
        .and_then(Object::as_array)
        .ok()
        .and_then(|fonts| fonts.first())
        .and_then(|first| deref(doc, first).as_dict().ok());
    let default_width = descendant
        .and_then(|cid_font| number(deref(doc, cid_font.get(b"DW").ok()?)))
        .unwrap_or(1000.0)
        / 1000.0;
    let widths = descendant
        .and_then(|cid_font| {
            cid_font
                .get_deref(b"W", doc)
                .and_then(Object::as_array)
                .ok()
        })
        .map(|w| cid_widths(doc, w, default_width))
        .unwrap_or_default();
    Codes::TwoByte {
        unicode,
        seen: RefCell::new(HashMap::new()),
        widths,
        default_width,
    }
}

/// The font's `/ToUnicode` map, parsed by lopdf (which parses it for the Identity encodings).
fn to_unicode(doc: &Document, font: &Dictionary) -> Option<Encoding<'static>> {
    font.get_deref(b"ToUnicode", doc)
        .and_then(Object::as_stream)
        .ok()?;
    let mut identity = font.clone();
    identity.set("Type", Object::Name(b"Font".to_vec()));
    identity.set("Encoding", Object::Name(b"Identity-H".to_vec()));
    match identity.get_font_encoding(doc) {
        Ok(Encoding::UnicodeMapEncoding(map)) => Some(Encoding::UnicodeMapEncoding(map)),
        _ => None,
    }
}

/// Widths of a simple font by code, in text space units per unit of font size.
fn simple_widths(doc: &Document, font: &Dictionary) -> Vec<f64> {
    // Type 3 glyphs are measured in the font's own matrix; all others in thousandths.
    let scale = font
        .get_deref(b"FontMatrix", doc)
        .and_then(Object::as_array)
        .ok()
        .and_then(|m| number(m.first()?))
        .unwrap_or(0.001);
    let missing = font
        .get_deref(b"FontDescriptor", doc)
        .and_then(Object::as_dict)
        .ok()
        .and_then(|d| number(deref(doc, d.get(b"MissingWidth").ok()?)))
        .filter(|&w| w > 0.0)
        .map(|w| w * scale)
        .unwrap_or_else(|| standard_width(font));
    let mut widths = vec![missing; 256];
    let first = font
        .get(b"FirstChar")
        .ok()
        .and_then(|f| f.as_i64().ok())
        .unwrap_or(0);
    if let Ok(given) = font.get_deref(b"Widths", doc).and_then(Object::as_array) {
        for (code, width) in (first..).zip(given) {
            if let (Ok(code), Some(width)) = (usize::try_from(code), number(deref(doc, width)))
                && code < widths.len()
            {
                widths[code] = width * scale;
            }
        }
    }
    widths
}

/// The width to assume for a font that gives none: one of the standard 14, which PDFs may
/// name without metrics. Courier is fixed-pitch; for the others half an em is close to
/// their average (only gaps between strings depend on it, not the text).
fn standard_width(font: &Dictionary) -> f64 {
    let base = font
        .get(b"BaseFont")
        .and_then(Object::as_name)
        .unwrap_or(b"");
    if base.starts_with(b"Courier") {
        0.6
    } else {
        0.5
    }
}

/// A CID font's `/W` array: `c [w1 w2 …]` gives widths from CID c on, `c_first c_last w` one
/// width for a range. CIDs are 16-bit; a hostile array cannot ask for more.
fn cid_widths(doc: &Document, w: &[Object], default_width: f64) -> Vec<f64> {
    let mut widths: Vec<f64> = Vec::new();
    let mut set = |cids: std::ops::Range<usize>, width: f64| {
        let cids = cids.start.min(CIDS)..cids.end.min(CIDS);
        if widths.len() < cids.end {
            widths.resize(cids.end, default_width);
        }
        widths[cids].fill(width / 1000.0);
    };
    let mut items = w.iter().map(|item| deref(doc, item));
    while let Some(first) = items.next() {
        let Some(first) = number(first).map(|f| (f.max(0.0) as usize).min(CIDS)) else {
            break;
        };
        match items.next() {
            Some(Object::Array(list)) => {
                for (cid, width) in (first..CIDS).zip(list) {
                    if let Some(width) = number(deref(doc, width)) {
                        set(cid..cid + 1, width);
                    }
                }
            }
            Some(last) => {
                let (Some(last), Some(width)) = (number(last), items.next().and_then(number))
                else {
                    break;
                };
                let last = (last.max(0.0) as usize).min(CIDS - 1);
                if last >= first {
                    set(first..last + 1, width);
                }
            }
            None => break,
        }
    }
    widths
}

const CIDS: usize = 1 << 16;

fn deref<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    doc.dereference(object).map_or(object, |(_, o)| o)
}

pub(super) fn number(object: &Object) -> Option<f64> {
    object.as_float().ok().map(f64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_widths_read_both_forms_and_stay_within_sixteen_bits() {
        let doc = Document::new();
        let w = vec![
            // c [w1 w2]: CIDs 3 and 4.
            Object::Integer(3),
            Object::Array(vec![Object::Integer(600), Object::Real(250.0)]),
            // c_first c_last w: CIDs 6 to 8.
            Object::Integer(6),
            Object::Integer(8),
            Object::Integer(1000),
            // A hostile range past the last CID is cut at it, not allocated.
            Object::Integer(65_530),
            Object::Integer(i64::MAX),
            Object::Integer(500),
        ];

        let widths = cid_widths(&doc, &w, 0.75);

        assert_eq!(widths.len(), CIDS);
        assert_eq!(&widths[2..9], &[0.75, 0.6, 0.25, 0.75, 1.0, 1.0, 1.0]);
        assert_eq!(widths[CIDS - 1], 0.5);
    }

    #[test]
    fn ligatures_are_spelled_out() {
        assert_eq!(
            spelled_out("conﬁgure the ﬂow".to_owned()),
            "configure the flow"
        );
        assert_eq!(spelled_out("plain".to_owned()), "plain");
    }
}
