//! A page's text in reading order, from its content stream: the text operators run against
//! a small graphics state (matrices, font, spacing), and where each shown string lands on the
//! page decides what separates it from the one before — nothing, a space, a line break, or a
//! blank line between paragraphs.
//!
//! Strings are placed in content-stream order, which is the reading order nearly every
//! producer writes. Form XObjects are read where they are drawn.

use std::rc::Rc;

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, ObjectId};

use super::fonts::{Font, Fonts, Spacing, number};

/// Why a page gave no text.
pub(super) enum PageError {
    /// The page alone has more text than may be kept.
    Overflow,
    Unreadable(String),
}

/// Forms drawn inside forms: deeper than this is a loop or an attack, not a document.
const MAX_FORM_DEPTH: usize = 8;

/// Reads the text of `page`, at most `cap` bytes.
pub(super) fn page_text<'d>(
    doc: &'d Document,
    fonts: &mut Fonts<'d>,
    page: ObjectId,
    cap: usize,
) -> Result<String, PageError> {
    let content = doc
        .get_page_content(page)
        .map_err(|e| PageError::Unreadable(e.to_string()))?;
    let operations = Content::decode(&content)
        .map_err(|e| PageError::Unreadable(format!("its content cannot be parsed ({e})")))?
        .operations;
    let (own, inherited) = doc
        .get_page_resources(page)
        .map_err(|e| PageError::Unreadable(e.to_string()))?;
    let resources: Vec<&Dictionary> = own
        .into_iter()
        .chain(
            inherited
                .iter()
                .filter_map(|&id| doc.get_dictionary(id).ok()),
        )
        .collect();
    let mut reader = Reader {
        doc,
        fonts,
        text: Placed {
            out: String::new(),
            cap,
            last: None,
        },
        forms: Vec::new(),
        shown: String::new(),
    };
    reader.run(&operations, &resources, Matrix::IDENTITY)?;
    Ok(reader.text.out)
}

struct Reader<'d, 'f> {
    doc: &'d Document,
    fonts: &'f mut Fonts<'d>,
    text: Placed,
    /// The forms being read (to refuse one drawing itself).
    forms: Vec<ObjectId>,
    /// The string being shown (one buffer for all).
    shown: String,
}

/// The part of the graphics state text depends on (saved by `q`, restored by `Q`).
#[derive(Clone)]
struct State {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    size: f64,
    char_spacing: f64,
    word_spacing: f64,
    horizontal_scale: f64,
    leading: f64,
    rise: f64,
}

impl Reader<'_, '_> {
    fn run(
        &mut self,
        operations: &[Operation],
        resources: &[&Dictionary],
        ctm: Matrix,
    ) -> Result<(), PageError> {
        let mut state = State {
            ctm,
            font: None,
            size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            horizontal_scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        };
        let mut saved = Vec::new();
        let mut text_matrix = Matrix::IDENTITY;
        let mut line_matrix = Matrix::IDENTITY;
        for op in operations {
            let operands = &op.operands;
            let num = |i: usize| operands.get(i).and_then(number).unwrap_or(0.0);
            match op.operator.as_str() {
                "q" => saved.push(state.clone()),
                "Q" => {
                    if let Some(previous) = saved.pop() {
                        state = previous;
                    }
                }
                "cm" => state.ctm = matrix(operands).multiply(&state.ctm),
                "BT" => {
                    text_matrix = Matrix::IDENTITY;
                    line_matrix = Matrix::IDENTITY;
                }
                "Tf" => {
                    state.font = operands
                        .first()
                        .and_then(|name| name.as_name().ok())
                        .and_then(|name| self.font(resources, name));
                    state.size = num(1);
                }
                "Tc" => state.char_spacing = num(0),
                "Tw" => state.word_spacing = num(0),
                "Tz" => state.horizontal_scale = num(0) / 100.0,
                "TL" => state.leading = num(0),
                "Ts" => state.rise = num(0),
                "Td" | "TD" => {
                    if op.operator == "TD" {
                        state.leading = -num(1);
                    }
                    line_matrix = Matrix::translation(num(0), num(1)).multiply(&line_matrix);
                    text_matrix = line_matrix;
                }
                "Tm" => {
                    line_matrix = matrix(operands);
                    text_matrix = line_matrix;
                }
                "T*" => {
                    line_matrix = Matrix::translation(0.0, -state.leading).multiply(&line_matrix);
                    text_matrix = line_matrix;
                }
                "Tj" | "'" | "\"" => {
                    if op.operator != "Tj" {
                        if op.operator == "\"" {
                            state.word_spacing = num(0);
                            state.char_spacing = num(1);
                        }
                        line_matrix =
                            Matrix::translation(0.0, -state.leading).multiply(&line_matrix);
                        text_matrix = line_matrix;
                    }
                    if let Some(Object::String(bytes, _)) = operands.last() {
                        self.show(&state, &mut text_matrix, bytes)?;
                    }
                }
                "TJ" => {
                    let Some(Object::Array(items)) = operands.first() else {
                        continue;
                    };
                    for item in items {
                        match item {
                            Object::String(bytes, _) => {
                                self.show(&state, &mut text_matrix, bytes)?
                            }
                            other => {
                                // Thousandths of a text space unit, to the left.
                                let shift = -number(other).unwrap_or(0.0) / 1000.0
                                    * state.size
                                    * state.horizontal_scale;
                                text_matrix =
                                    Matrix::translation(shift, 0.0).multiply(&text_matrix);
                            }
                        }
                    }
                }
                "Do" => {
                    if let Some(name) = operands.first().and_then(|n| n.as_name().ok()) {
                        self.form(resources, name, &state.ctm)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Places one shown string and moves the text matrix past it.
    fn show(
        &mut self,
        state: &State,
        text_matrix: &mut Matrix,
        bytes: &[u8],
    ) -> Result<(), PageError> {
        let Some(font) = &state.font else {
            // A font the page does not have: its text cannot be read, the rest can.
            return Ok(());
        };
        let start = text_matrix.multiply(&state.ctm);
        let (x, y) = start.apply(0.0, state.rise);
        let size = state.size * start.scale();
        let spacing = Spacing {
            size: state.size,
            char_spacing: state.char_spacing,
            word_spacing: state.word_spacing,
        };
        let mut shown = std::mem::take(&mut self.shown);
        shown.clear();
        let advance = font.decode(bytes, &spacing, &mut shown) * state.horizontal_scale;
        *text_matrix = Matrix::translation(advance, 0.0).multiply(text_matrix);
        let end = text_matrix.multiply(&state.ctm).apply(0.0, state.rise);
        let placed = self.text.place(x, y, size, &shown, end);
        self.shown = shown;
        placed
    }

    /// Reads a form XObject where `Do` draws it (images and unknown names draw no text).
    fn form(
        &mut self,
        resources: &[&Dictionary],
        name: &[u8],
        ctm: &Matrix,
    ) -> Result<(), PageError> {
        let Some(Object::Reference(id)) = lookup(self.doc, resources, b"XObject", name) else {
            return Ok(());
        };
        let Ok(stream) = self.doc.get_object(*id).and_then(Object::as_stream) else {
            return Ok(());
        };
        let is_form = stream.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form");
        if !is_form || self.forms.contains(id) || self.forms.len() >= MAX_FORM_DEPTH {
            return Ok(());
        }
        let Ok(content) = stream.decompressed_content() else {
            return Ok(());
        };
        let Ok(content) = Content::decode(&content) else {
            return Ok(());
        };
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|r| self.doc.dereference(r).ok())
            .and_then(|(_, r)| r.as_dict().ok());
        // A form without resources of its own uses its page's.
        let resources: Vec<&Dictionary> = match own {
            Some(own) => vec![own],
            None => resources.to_vec(),
        };
        let form_matrix = stream
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|m| m.as_array().ok())
            .map_or(Matrix::IDENTITY, |m| matrix(m));
        self.forms.push(*id);
        let result = self.run(&content.operations, &resources, form_matrix.multiply(ctm));
        self.forms.pop();
        result
    }

    fn font(&mut self, resources: &[&Dictionary], name: &[u8]) -> Option<Rc<Font>> {
        let value = lookup(self.doc, resources, b"Font", name)?;
        self.fonts.get(value)
    }
}

/// `name` in the `kind` (Font, XObject) dictionary of the first resources that have it.
fn lookup<'d>(
    doc: &'d Document,
    resources: &[&'d Dictionary],
    kind: &[u8],
    name: &[u8],
) -> Option<&'d Object> {
    resources.iter().find_map(|resources| {
        let (_, named) = doc.dereference(resources.get(kind).ok()?).ok()?;
        named.as_dict().ok()?.get(name).ok()
    })
}

/// The page's text as strings are placed.
struct Placed {
    out: String,
    cap: usize,
    /// Where the last string ended (x, y) and its size, in page space.
    last: Option<Last>,
}

struct Last {
    end_x: f64,
    y: f64,
}

impl Placed {
    /// Appends `shown`, which starts at (x, y) in page space, in a font `size` high, and ends
    /// at `end`. What separates it from the string before comes from where the two are:
    /// lower and back to the left is a new line (a blank line when the gap is more than one
    /// and a half lines, a new paragraph); a gap on the same line wider than a tenth of the
    /// font size is a space (producers that position words instead of writing spaces).
    fn place(
        &mut self,
        x: f64,
        y: f64,
        size: f64,
        shown: &str,
        end: (f64, f64),
    ) -> Result<(), PageError> {
        if shown.is_empty() {
            return Ok(());
        }
        if let Some(last) = &self.last {
            let rise = (y - last.y).abs();
            let ends_blank = self.out.ends_with(char::is_whitespace);
            if rise > size * 1.5 && x < last.end_x {
                self.out.push_str("\n\n");
            } else if rise > size * 0.5 && (x < last.end_x || rise > size * 1.5) {
                self.out.push('\n');
            } else if (rise > size * 0.5 || x > last.end_x + size * 0.1)
                && !ends_blank
                && !shown.starts_with(char::is_whitespace)
            {
                self.out.push(' ');
            }
        }
        self.out.push_str(shown);
        if self.out.len() > self.cap {
            return Err(PageError::Overflow);
        }
        self.last = Some(Last {
            end_x: end.0,
            y: end.1,
        });
        Ok(())
    }
}

/// A PDF transformation matrix [a b c d e f]: x' = a·x + c·y + e, y' = b·x + d·y + f.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Matrix([f64; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    fn translation(x: f64, y: f64) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, x, y])
    }

    /// `self` then `then` (PDF's row-vector order: self × then).
    fn multiply(&self, then: &Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = then.0;
        Matrix([
            a * a2 + b * c2,
            a * b2 + b * d2,
            c * a2 + d * c2,
            c * b2 + d * d2,
            e * a2 + f * c2 + e2,
            e * b2 + f * d2 + f2,
        ])
    }

    fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.0;
        (a * x + c * y + e, b * x + d * y + f)
    }

    /// How much the matrix scales lengths (the side of a unit square's image).
    fn scale(&self) -> f64 {
        let [a, b, c, d, ..] = self.0;
        (a * d - b * c).abs().sqrt()
    }
}

/// The six numbers of a `cm`, `Tm` or `/Matrix` (the identity where they are not numbers).
fn matrix(operands: &[Object]) -> Matrix {
    let mut m = [0.0; 6];
    for (slot, operand) in m.iter_mut().zip(operands) {
        match number(operand) {
            Some(n) => *slot = n,
            None => return Matrix::IDENTITY,
        }
    }
    if operands.len() < 6 {
        return Matrix::IDENTITY;
    }
    Matrix(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_compose_in_pdf_order() {
        let scale = Matrix([2.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
        let moved = Matrix::translation(10.0, 5.0).multiply(&scale);
        assert_eq!(moved.apply(1.0, 1.0), (22.0, 12.0));
        assert_eq!(moved.scale(), 2.0);
    }

    fn placed(strings: &[(f64, f64, &str)]) -> String {
        let mut text = Placed {
            out: String::new(),
            cap: usize::MAX,
            last: None,
        };
        for &(x, y, shown) in strings {
            // Half an em per character at size 10.
            let end = (x + shown.chars().count() as f64 * 5.0, y);
            assert!(text.place(x, y, 10.0, shown, end).is_ok());
        }
        text.out
    }

    #[test]
    fn where_strings_land_decides_what_separates_them() {
        // Kerned pieces of one word touch; a gap of a third of an em is a space.
        assert_eq!(placed(&[(0.0, 700.0, "Hel"), (15.0, 700.0, "lo")]), "Hello");
        assert_eq!(
            placed(&[(0.0, 700.0, "Hello"), (28.0, 700.0, "world")]),
            "Hello world"
        );
        // The next line; then a paragraph gap.
        assert_eq!(
            placed(&[
                (0.0, 700.0, "one"),
                (0.0, 688.0, "two"),
                (0.0, 660.0, "three")
            ]),
            "one\ntwo\n\nthree"
        );
        // A superscript stays on its line; a string's own spaces are not doubled.
        assert_eq!(
            placed(&[(0.0, 700.0, "x"), (5.0, 703.0, "2"), (30.0, 700.0, " y")]),
            "x2 y"
        );
    }

    #[test]
    fn a_page_stops_at_its_cap() {
        let mut text = Placed {
            out: String::new(),
            cap: 4,
            last: None,
        };
        assert!(text.place(0.0, 0.0, 10.0, "abc", (15.0, 0.0)).is_ok());
        assert!(matches!(
            text.place(15.0, 0.0, 10.0, "def", (30.0, 0.0)),
            Err(PageError::Overflow)
        ));
    }
}
