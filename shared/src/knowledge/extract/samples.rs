//! Synthetic documents for tests and the extraction benchmark: small, real files made on the
//! spot (PDF with `lopdf`, DOCX with `zip`), including hostile ones (bombs, encrypted PDFs).

use std::io::{Cursor, Write};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, ObjectId, Stream, dictionary};
use zip::write::SimpleFileOptions;

/// A PDF with one page per entry of `pages`, each line of an entry a line of text on the page
/// (Helvetica, so only Latin-1 characters show), and `title` in its information dictionary.
pub fn pdf(title: &str, pages: &[&str]) -> Vec<u8> {
    let mut builder = PdfBuilder::new();
    for page in pages {
        builder.text_page(page, None);
    }
    builder.finish(Some(title))
}

/// Like [`pdf`], but page `broken` (0-based) uses a font that does not exist, which the
/// reader cannot get past.
pub fn pdf_with_broken_page(pages: &[&str], broken: usize) -> Vec<u8> {
    let mut builder = PdfBuilder::new();
    for (n, page) in pages.iter().enumerate() {
        if n == broken {
            let good = builder.font_id;
            builder.font_id = (9_999, 0);
            builder.text_page(page, None);
            builder.font_id = good;
        } else {
            builder.text_page(page, None);
        }
    }
    builder.finish(None)
}

/// A PDF of about `target_bytes`: `pages` pages, each with a paragraph of text and an
/// incompressible image filling the rest (the shape of a real brochure or scanned manual).
pub fn pdf_with_images(pages: usize, target_bytes: usize) -> Vec<u8> {
    let mut builder = PdfBuilder::new();
    let image_bytes = (target_bytes / pages.max(1)).saturating_sub(2_000).max(64);
    let side = (image_bytes as f64).sqrt() as i64;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for n in 0..pages {
        let pixels: Vec<u8> = (0..side * side)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let image = Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => side,
                "Height" => side,
                "ColorSpace" => "DeviceGray",
                "BitsPerComponent" => 8,
            },
            pixels,
        );
        let image_id = builder.doc.add_object(image);
        builder.text_page(&lorem_page(n), Some(image_id));
    }
    builder.finish(Some("Brochure"))
}

/// A PDF with pages of text only, about `text_bytes` of text in all.
pub fn pdf_text_heavy(text_bytes: usize) -> Vec<u8> {
    let mut builder = PdfBuilder::new();
    let mut written = 0;
    let mut n = 0;
    while written < text_bytes {
        let page = lorem_page(n);
        written += page.len();
        builder.text_page(&page, None);
        n += 1;
    }
    builder.finish(None)
}

/// A one-page PDF whose content stream inflates to `inflated_bytes` of spaces.
pub fn pdf_decompression_bomb(inflated_bytes: usize) -> Vec<u8> {
    // Best compression: its ratio on a run of one byte is the same across zlib backends.
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    let block = vec![b' '; 1 << 20];
    let mut left = inflated_bytes;
    while left > 0 {
        let n = left.min(block.len());
        encoder.write_all(&block[..n]).expect("writing to memory");
        left -= n;
    }
    let deflated = encoder.finish().expect("writing to memory");
    let mut builder = PdfBuilder::new();
    let content = builder.doc.add_object(Stream::new(
        dictionary! { "Filter" => "FlateDecode" },
        deflated,
    ));
    builder.page(content);
    builder.finish(None)
}

/// A text PDF encrypted with a user password (RC4, 128 bits).
pub fn pdf_encrypted(user_password: &str, pages: &[&str]) -> Vec<u8> {
    let mut doc = Document::load_mem(&pdf("Secret", pages)).expect("a PDF we just made");
    // The file identifier salts the encryption key.
    let id = Object::String(
        b"chatpad-sample-1".to_vec(),
        lopdf::StringFormat::Hexadecimal,
    );
    doc.trailer.set("ID", vec![id.clone(), id]);
    let version = lopdf::encryption::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner",
        user_password,
        key_length: 128,
        permissions: lopdf::encryption::Permissions::all(),
    };
    let state = lopdf::encryption::EncryptionState::try_from(version).expect("valid parameters");
    doc.encrypt(&state).expect("encrypting");
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("writing to memory");
    out
}

/// A one-page PDF laid out the way browsers and word processors write one: a subset Type 0
/// font (Identity-H, glyph ids as codes, a `/ToUnicode` map, `/W` widths) whose words are
/// placed by `TJ` offsets with no space glyphs and whose words are sometimes split by kerning;
/// a simple font whose `/Differences` name a ligature glyph (`/fi`); and a footer drawn from a
/// form XObject. `paragraphs` are laid out line by line (one line per `\n`), with a
/// paragraph's gap between them; the second font shows the last line, `ligature_line`, with
/// "fi" as its ligature glyph.
pub fn pdf_like_a_browser(paragraphs: &[&str], ligature_line: &str, footer: &str) -> Vec<u8> {
    let mut builder = PdfBuilder::new();
    // Glyph ids in order of first use, as a subsetting producer assigns them.
    let mut glyphs: Vec<char> = Vec::new();
    let mut glyph_id = |c: char| -> u16 {
        let n = glyphs.iter().position(|&g| g == c).unwrap_or_else(|| {
            glyphs.push(c);
            glyphs.len() - 1
        });
        n as u16 + 1
    };
    let mut encode = |text: &str| -> Object {
        let bytes = text
            .chars()
            .flat_map(|c| glyph_id(c).to_be_bytes())
            .collect();
        Object::String(bytes, lopdf::StringFormat::Hexadecimal)
    };
    let mut ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["C1".into(), 10.into()]),
        Operation::new(
            "Tm",
            vec![
                1.into(),
                0.into(),
                0.into(),
                1.into(),
                72.into(),
                760.into(),
            ],
        ),
    ];
    for (n, paragraph) in paragraphs.iter().enumerate() {
        if n > 0 {
            ops.push(Operation::new("Td", vec![0.into(), (-24).into()]));
        }
        for (l, line) in paragraph.lines().enumerate() {
            if l > 0 {
                ops.push(Operation::new("Td", vec![0.into(), (-12).into()]));
            }
            let mut items = Vec::new();
            for (w, word) in line.split(' ').enumerate() {
                if w > 0 {
                    // A word gap of 0.28 em, the way justified text is set.
                    items.push(Object::Integer(-280));
                }
                // Kerning inside longer words: a small shift that is not a gap.
                let split = word.char_indices().nth(3).map_or(word.len(), |(i, _)| i);
                items.push(encode(&word[..split]));
                if split < word.len() {
                    items.push(Object::Integer(-15));
                    items.push(encode(&word[split..]));
                }
            }
            ops.push(Operation::new("TJ", vec![Object::Array(items)]));
        }
    }
    // The ligature line in the simple font, one line below.
    let ligature = ligature_line.replace("fi", "\u{1}").into_bytes();
    ops.push(Operation::new("Tf", vec!["F2".into(), 10.into()]));
    ops.push(Operation::new("Td", vec![0.into(), (-12).into()]));
    ops.push(Operation::new(
        "Tj",
        vec![Object::String(ligature, lopdf::StringFormat::Literal)],
    ));
    ops.push(Operation::new("ET", vec![]));
    ops.push(Operation::new("q", vec![]));
    ops.push(Operation::new(
        "cm",
        vec![1.into(), 0.into(), 0.into(), 1.into(), 72.into(), 40.into()],
    ));
    ops.push(Operation::new("Do", vec!["Footer".into()]));
    ops.push(Operation::new("Q", vec![]));

    let mut cmap = format!(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n{} beginbfchar\n",
        glyphs.len()
    );
    for (n, c) in glyphs.iter().enumerate() {
        cmap.push_str(&format!("<{:04X}> <{:04X}>\n", n + 1, u32::from(*c)));
    }
    cmap.push_str("endbfchar\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    let to_unicode = builder
        .doc
        .add_object(Stream::new(dictionary! {}, cmap.into_bytes()));
    let widths: Vec<Object> = glyphs.iter().map(|_| Object::Integer(500)).collect();
    let cid_font = builder.doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "CIDFontType2",
        "BaseFont" => "AAAAAA+LiberationSans",
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Identity"),
            "Supplement" => 0,
        },
        "DW" => 1000,
        "W" => vec![Object::Integer(1), Object::Array(widths)],
    });
    let composite = builder.doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => "AAAAAA+LiberationSans",
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![cid_font.into()],
        "ToUnicode" => to_unicode,
    });
    let simple = builder.doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "CMR10",
        "FirstChar" => 1,
        "Widths" => vec![Object::Integer(556)],
        "Encoding" => dictionary! {
            "Type" => "Encoding",
            "BaseEncoding" => "WinAnsiEncoding",
            "Differences" => vec![1.into(), "fi".into()],
        },
    });
    let footer_content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 8.into()]),
            Operation::new("Tj", vec![Object::string_literal(footer)]),
            Operation::new("ET", vec![]),
        ],
    };
    let form = builder.doc.add_object(Stream::new(
        dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 400.into(), 20.into()],
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => builder.font_id } },
        },
        footer_content.encode().expect("encoding content"),
    ));
    let content = builder.doc.add_object(Stream::new(
        dictionary! {},
        Content { operations: ops }
            .encode()
            .expect("encoding content"),
    ));
    let resources = builder.doc.add_object(dictionary! {
        "Font" => dictionary! { "C1" => composite, "F2" => simple },
        "XObject" => dictionary! { "Footer" => form },
    });
    builder.page_with(content, Some(resources));
    builder.finish(None)
}

struct PdfBuilder {
    doc: Document,
    pages_id: ObjectId,
    font_id: ObjectId,
    kids: Vec<Object>,
}

impl PdfBuilder {
    fn new() -> Self {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        });
        PdfBuilder {
            doc,
            pages_id,
            font_id,
            kids: Vec::new(),
        }
    }

    /// A page with `text` (one line per line) and, if given, an image drawn below it.
    fn text_page(&mut self, text: &str, image: Option<ObjectId>) {
        let mut ops = Vec::new();
        if image.is_some() {
            ops.push(Operation::new("q", vec![]));
            ops.push(Operation::new(
                "cm",
                vec![
                    400.into(),
                    0.into(),
                    0.into(),
                    300.into(),
                    100.into(),
                    100.into(),
                ],
            ));
            ops.push(Operation::new("Do", vec!["Im1".into()]));
            ops.push(Operation::new("Q", vec![]));
        }
        ops.push(Operation::new("BT", vec![]));
        ops.push(Operation::new("Tf", vec!["F1".into(), 10.into()]));
        ops.push(Operation::new("TL", vec![12.into()]));
        ops.push(Operation::new("Td", vec![50.into(), 800.into()]));
        for line in text.lines() {
            let latin1: Vec<u8> = line
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect();
            ops.push(Operation::new(
                "Tj",
                vec![Object::String(latin1, lopdf::StringFormat::Literal)],
            ));
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("ET", vec![]));
        let encoded = Content { operations: ops }
            .encode()
            .expect("encoding content");
        let mut stream = Stream::new(dictionary! {}, encoded);
        let _ = stream.compress();
        let content = self.doc.add_object(stream);
        let mut resources = dictionary! { "Font" => dictionary! { "F1" => self.font_id } };
        if let Some(image) = image {
            resources.set("XObject", dictionary! { "Im1" => image });
        }
        let resources = self.doc.add_object(resources);
        self.page_with(content, Some(resources));
    }

    fn page(&mut self, content: ObjectId) {
        let resources = self
            .doc
            .add_object(dictionary! { "Font" => dictionary! { "F1" => self.font_id } });
        self.page_with(content, Some(resources));
    }

    fn page_with(&mut self, content: ObjectId, resources: Option<ObjectId>) {
        let mut page = dictionary! {
            "Type" => "Page",
            "Parent" => self.pages_id,
            "Contents" => content,
        };
        if let Some(resources) = resources {
            page.set("Resources", resources);
        }
        let id = self.doc.add_object(page);
        self.kids.push(id.into());
    }

    fn finish(mut self, title: Option<&str>) -> Vec<u8> {
        let count = self.kids.len() as i64;
        let pages = dictionary! {
            "Type" => "Pages",
            "Kids" => std::mem::take(&mut self.kids),
            "Count" => count,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        };
        self.doc
            .objects
            .insert(self.pages_id, Object::Dictionary(pages));
        let catalog = self
            .doc
            .add_object(dictionary! { "Type" => "Catalog", "Pages" => self.pages_id });
        self.doc.trailer.set("Root", catalog);
        if let Some(title) = title {
            let info = self.doc.add_object(dictionary! {
                "Title" => Object::string_literal(title),
            });
            self.doc.trailer.set("Info", info);
        }
        let mut out = Vec::new();
        self.doc.save_to(&mut out).expect("writing to memory");
        out
    }
}

/// About 2 KB of varied English-like text for page `n`, in lines of about 80 characters.
pub fn lorem_page(n: usize) -> String {
    const WORDS: &[&str] = &[
        "refund",
        "order",
        "shipping",
        "account",
        "password",
        "invoice",
        "customer",
        "support",
        "delivery",
        "returns",
        "warranty",
        "billing",
        "subscription",
        "plan",
        "upgrade",
        "cancel",
        "address",
        "payment",
        "card",
        "receipt",
        "the",
        "a",
        "within",
        "days",
        "your",
        "we",
        "will",
        "is",
        "and",
        "of",
        "to",
        "for",
        "please",
        "contact",
        "team",
        "email",
    ];
    let mut text = format!("Section {n}\n");
    let mut line = String::new();
    let mut i = n.wrapping_mul(7919);
    while text.len() < 2_000 {
        i = i.wrapping_mul(1103515245).wrapping_add(12345);
        line.push_str(WORDS[(i >> 8) % WORDS.len()]);
        if line.len() > 80 {
            line.push('.');
            text.push_str(&line);
            text.push('\n');
            line.clear();
        } else {
            line.push(' ');
        }
    }
    text
}

const WORD_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";

/// A DOCX whose `w:body` holds `body_xml` (WordprocessingML with the `w:` prefix); styles
/// `Heading1`, `Heading2` and `Title` are defined, and numbering `1` is bulleted, `2` decimal.
pub fn docx(title: &str, body_xml: &str) -> Vec<u8> {
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="{WORD_NS}"><w:body>{body_xml}</w:body></w:document>"#
    );
    docx_with_document(title, document.as_bytes())
}

/// A DOCX whose `word/document.xml` is `document` as given.
pub fn docx_with_document(title: &str, document: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in docx_package(title) {
        zip.start_file(name, options).expect("writing to memory");
        zip.write_all(content.as_bytes())
            .expect("writing to memory");
    }
    zip.start_file("word/document.xml", options)
        .expect("writing to memory");
    zip.write_all(document).expect("writing to memory");
    zip.finish().expect("writing to memory").into_inner()
}

/// A DOCX whose `word/document.xml` inflates to `inflated_bytes` (one endless paragraph).
/// With `lie`, the archive's headers claim the entry is 1 KB.
pub fn docx_zip_bomb(inflated_bytes: usize, lie: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .large_file(false);
    for (name, content) in docx_package("Bomb") {
        zip.start_file(name, options).expect("writing to memory");
        zip.write_all(content.as_bytes())
            .expect("writing to memory");
    }
    zip.start_file("word/document.xml", options)
        .expect("writing to memory");
    let head = format!(r#"<w:document xmlns:w="{WORD_NS}"><w:body><w:p><w:r><w:t>"#);
    zip.write_all(head.as_bytes()).expect("writing to memory");
    let block = vec![b'a'; 1 << 20];
    let mut left = inflated_bytes;
    while left > 0 {
        let n = left.min(block.len());
        zip.write_all(&block[..n]).expect("writing to memory");
        left -= n;
    }
    zip.write_all(b"</w:t></w:r></w:p></w:body></w:document>")
        .expect("writing to memory");
    let mut bytes = zip.finish().expect("writing to memory").into_inner();
    if lie {
        claim_size(&mut bytes, b"word/document.xml", 1024);
    }
    bytes
}

/// Rewrites the uncompressed size of entry `name` in its local and central headers.
fn claim_size(zip: &mut [u8], name: &[u8], size: u32) {
    let size = size.to_le_bytes();
    for at in 0..zip.len().saturating_sub(46) {
        let (signature, name_at, size_at) = match &zip[at..at + 4] {
            b"PK\x03\x04" => (true, at + 30, at + 22),
            b"PK\x01\x02" => (true, at + 46, at + 24),
            _ => (false, 0, 0),
        };
        if signature && zip.get(name_at..name_at + name.len()) == Some(name) {
            zip[size_at..size_at + 4].copy_from_slice(&size);
        }
    }
}

fn docx_package(title: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#.to_owned(),
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#.to_owned(),
        ),
        (
            "docProps/core.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{}</dc:title></cp:coreProperties>"#,
                quick_xml::escape::escape(title)
            ),
        ),
        (
            "word/styles.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><w:styles xmlns:w="{WORD_NS}"><w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style><w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style><w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr></w:style><w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style></w:styles>"#
            ),
        ),
        (
            "word/numbering.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><w:numbering xmlns:w="{WORD_NS}"><w:abstractNum w:abstractNumId="0"><w:lvl w:ilvl="0"><w:numFmt w:val="bullet"/></w:lvl></w:abstractNum><w:abstractNum w:abstractNumId="1"><w:lvl w:ilvl="0"><w:numFmt w:val="decimal"/></w:lvl></w:abstractNum><w:num w:numId="1"><w:abstractNumId w:val="0"/></w:num><w:num w:numId="2"><w:abstractNumId w:val="1"/></w:num></w:numbering>"#
            ),
        ),
    ]
}
