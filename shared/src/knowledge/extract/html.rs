//! HTML: the page's content as Markdown, without its boilerplate.
//!
//! Navigation, headers, footers, sidebars, forms, scripts and cookie banners are dropped; the
//! content is the page's `<main>` (or its one `<article>`) when it holds a fair share of the
//! text, else the body. Headings, paragraphs, lists, tables and preformatted text keep their
//! Markdown form; links keep their text. The tree is walked recursively up to a fixed depth and
//! flattened to text below it, so deeply nested markup cannot overflow the stack.

use scraper::{ElementRef, Html, Node, Selector};
use url::Url;

use super::{Budget, ExtractError, markdown_table};
use crate::knowledge::Extracted;

/// Elements nested deeper than this are read as plain text.
const MAX_DEPTH: usize = 96;

pub(super) fn extract(html: &str, budget: &mut Budget) -> Result<Extracted, ExtractError> {
    let doc = Html::parse_document(html);
    let root = content_root(&doc);
    let mut writer = Writer::new(budget);
    writer.walk(root, 0)?;
    writer.flush()?;
    let title = title(&doc).or(writer.first_heading.take());
    Ok(Extracted {
        title,
        parts: vec![super::whole(writer.out)],
    })
}

/// The links of a page, resolved against its `<base href>` or `base_url`: http(s) only,
/// without fragments, each once, in page order. For the crawler.
pub fn links(html: &str, base_url: &Url) -> Vec<Url> {
    let doc = Html::parse_document(html);
    let base = select_first(&doc, "base[href]")
        .and_then(|b| b.attr("href"))
        .and_then(|href| base_url.join(href.trim()).ok())
        .unwrap_or_else(|| base_url.clone());
    let selector = Selector::parse("a[href], area[href]").expect("a valid selector");
    let mut seen = std::collections::HashSet::new();
    let mut links = Vec::new();
    for a in doc.select(&selector) {
        let Some(mut url) = a.attr("href").and_then(|href| base.join(href.trim()).ok()) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        url.set_fragment(None);
        if seen.insert(url.clone()) {
            links.push(url);
        }
    }
    links
}

fn select_first<'a>(doc: &'a Html, selector: &str) -> Option<ElementRef<'a>> {
    let selector = Selector::parse(selector).expect("a valid selector");
    doc.select(&selector).next()
}

/// `<title>`, whitespace collapsed.
fn title(doc: &Html) -> Option<String> {
    let title = select_first(doc, "title")?;
    let text = collapse(&title.text().collect::<String>());
    (!text.is_empty()).then_some(text)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Characters of text under `el` (boilerplate included; only used to compare sizes).
fn text_len(el: ElementRef) -> usize {
    el.text().map(|t| t.trim().len()).sum()
}

/// `<main>` / `role=main`, else the page's only `<article>`, when it holds at least a quarter of
/// the body's text (a `<main>` that wraps only a hero banner is not the content); else the body.
fn content_root(doc: &Html) -> ElementRef<'_> {
    let body = select_first(doc, "body").unwrap_or_else(|| doc.root_element());
    let articles = Selector::parse("article").expect("a valid selector");
    let candidate = select_first(doc, "main, [role=main]").or_else(|| {
        let mut found = doc.select(&articles);
        let first = found.next();
        first.filter(|_| found.next().is_none())
    });
    match candidate {
        Some(c) if text_len(c) * 4 >= text_len(body) => c,
        _ => body,
    }
}

/// Elements that are never content.
fn is_chrome(name: &str) -> bool {
    matches!(
        name,
        "script"
            | "style"
            | "noscript"
            | "template"
            | "nav"
            | "aside"
            | "form"
            | "button"
            | "input"
            | "select"
            | "textarea"
            | "label"
            | "iframe"
            | "svg"
            | "canvas"
            | "object"
            | "embed"
            | "dialog"
            | "head"
            | "img"
            | "picture"
            | "video"
            | "audio"
            | "map"
    )
}

/// Class and id words of site chrome (token fragments, matched in lower case).
const CHROME_WORDS: &[&str] = &[
    "cookie",
    "consent",
    "breadcrumb",
    "sidebar",
    "newsletter",
    "advert",
    "popup",
    "skip-link",
    "skiplink",
    "share-",
    "social",
    "navbar",
    "site-header",
    "site-footer",
];

/// Class and id tokens of site chrome (matched whole).
const CHROME_TOKENS: &[&str] = &[
    "share", "ads", "ad", "promo", "modal", "menu", "nav", "banner",
];

/// Whether an element is boilerplate: chrome elements, page-level headers and footers, hidden
/// elements, navigation roles, and cookie banners, sidebars and the like by class or id.
fn is_boilerplate(el: ElementRef, in_content: bool) -> bool {
    let e = el.value();
    let name = e.name();
    if is_chrome(name) {
        return true;
    }
    // An article's own header holds its title; the page's header holds the logo and menu.
    if matches!(name, "header" | "footer") && !in_content {
        return true;
    }
    if e.attr("hidden").is_some() || e.attr("aria-hidden") == Some("true") {
        return true;
    }
    const CHROME_ROLES: &[&str] = &[
        "navigation",
        "banner",
        "contentinfo",
        "complementary",
        "search",
        "dialog",
        "menu",
    ];
    if e.attr("role")
        .is_some_and(|role| CHROME_ROLES.contains(&role))
    {
        return true;
    }
    if matches!(name, "html" | "body" | "main" | "article") {
        return false;
    }
    let mut tokens = e
        .attr("class")
        .into_iter()
        .chain(e.attr("id"))
        .flat_map(str::split_whitespace);
    tokens.any(|token| {
        // Most class names are lower case already: no allocation for them.
        let token: std::borrow::Cow<str> = if token.bytes().any(|b| b.is_ascii_uppercase()) {
            token.to_ascii_lowercase().into()
        } else {
            token.into()
        };
        CHROME_TOKENS.contains(&&*token) || CHROME_WORDS.iter().any(|w| token.contains(w))
    })
}

/// Elements that start a new block of text.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "blockquote"
            | "body"
            | "center"
            | "dd"
            | "details"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "header"
            | "hgroup"
            | "hr"
            | "li"
            | "main"
            | "p"
            | "section"
            | "summary"
            | "tr"
    )
}

/// Walks the tree, gathering inline text and emitting Markdown blocks.
struct Writer<'a, 'b> {
    budget: &'a mut Budget<'b>,
    out: String,
    /// Text of the block being gathered, whitespace already collapsed.
    inline: String,
    /// Above zero inside a table cell or list item: blocks only separate words there.
    inline_only: usize,
    /// Above zero inside `<main>`, `<article>`: headers and footers there are content.
    in_content: usize,
    first_heading: Option<String>,
    visited: u32,
}

impl<'a, 'b> Writer<'a, 'b> {
    fn new(budget: &'a mut Budget<'b>) -> Self {
        Writer {
            budget,
            out: String::new(),
            inline: String::new(),
            inline_only: 0,
            in_content: 0,
            first_heading: None,
            visited: 0,
        }
    }

    fn walk(&mut self, el: ElementRef, depth: usize) -> Result<(), ExtractError> {
        self.visited = self.visited.wrapping_add(1);
        if self.visited.is_multiple_of(4096) {
            self.budget.check_time()?;
        }
        if is_boilerplate(el, self.in_content > 0) {
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            // `text()` iterates without recursion.
            for text in el.text() {
                self.push_text(text);
            }
            return Ok(());
        }
        let name = el.value().name();
        let content = matches!(name, "main" | "article");
        self.in_content += usize::from(content);
        let result = self.element(el, name, depth);
        self.in_content -= usize::from(content);
        result
    }

    fn element(&mut self, el: ElementRef, name: &str, depth: usize) -> Result<(), ExtractError> {
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" if self.inline_only == 0 => {
                let text = self.inline_text(el, depth)?;
                if !text.is_empty() {
                    let level = usize::from(name.as_bytes()[1] - b'0');
                    if level == 1 && self.first_heading.is_none() {
                        self.first_heading = Some(text.clone());
                    }
                    self.push_block(&format!("{} {text}", "#".repeat(level)))?;
                }
            }
            "ul" | "ol" if self.inline_only == 0 => {
                self.flush()?;
                let mut lines = Vec::new();
                self.list(el, name == "ol", 0, depth, &mut lines)?;
                if !lines.is_empty() {
                    self.push_block(&lines.join("\n"))?;
                }
            }
            "table" if self.inline_only == 0 => {
                self.flush()?;
                let rows = self.table_rows(el, depth)?;
                if !rows.is_empty() {
                    self.push_block(&markdown_table(&rows))?;
                }
            }
            "pre" if self.inline_only == 0 => {
                self.flush()?;
                let code: String = el.text().collect();
                let code = super::text::normalize(code.trim_matches('\n'));
                if !code.trim().is_empty() {
                    self.push_block(&format!("```\n{code}\n```"))?;
                }
            }
            "blockquote" if self.inline_only == 0 => {
                let text = self.inline_text(el, depth)?;
                if !text.is_empty() {
                    self.push_block(&format!("> {text}"))?;
                }
            }
            "br" => self.push_break(),
            _ if is_block(name) || matches!(name, "ul" | "ol" | "table" | "pre") => {
                self.flush()?;
                self.children(el, depth)?;
                self.flush()?;
            }
            _ => self.children(el, depth)?,
        }
        Ok(())
    }

    fn children(&mut self, el: ElementRef, depth: usize) -> Result<(), ExtractError> {
        for child in el.children() {
            match child.value() {
                Node::Text(text) => self.push_text(text),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child) {
                        self.walk(child, depth + 1)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The text of `el` on one line (blocks inside become spaces).
    fn inline_text(&mut self, el: ElementRef, depth: usize) -> Result<String, ExtractError> {
        self.flush()?;
        self.inline_only += 1;
        let result = self.children(el, depth);
        self.inline_only -= 1;
        result?;
        let text = collapse(&std::mem::take(&mut self.inline));
        Ok(text)
    }

    /// `- item` / `1. item` lines, nested lists indented below their item.
    fn list(
        &mut self,
        el: ElementRef,
        ordered: bool,
        indent: usize,
        depth: usize,
        lines: &mut Vec<String>,
    ) -> Result<(), ExtractError> {
        let mut number = 0;
        for item in el.child_elements() {
            if is_boilerplate(item, self.in_content > 0) {
                continue;
            }
            let mut nested = Vec::new();
            self.inline_only += 1;
            for child in item.children() {
                match child.value() {
                    Node::Text(text) => self.push_text(text),
                    Node::Element(e) if matches!(e.name(), "ul" | "ol") => nested.push(child),
                    Node::Element(_) => {
                        if let Some(child) = ElementRef::wrap(child) {
                            self.walk(child, depth + 2)?;
                        }
                    }
                    _ => {}
                }
            }
            self.inline_only -= 1;
            let text = collapse(&std::mem::take(&mut self.inline));
            if !text.is_empty() {
                number += 1;
                let marker = if ordered {
                    format!("{number}.")
                } else {
                    "-".to_owned()
                };
                lines.push(format!("{}{marker} {text}", "  ".repeat(indent)));
            }
            for list in nested.into_iter().filter_map(ElementRef::wrap) {
                if depth + 2 < MAX_DEPTH && indent < 8 {
                    let ordered = list.value().name() == "ol";
                    self.list(list, ordered, indent + 1, depth + 2, lines)?;
                } else {
                    lines.push(format!(
                        "{}- {}",
                        "  ".repeat(indent + 1),
                        collapse_text(list)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rows of a table (not of tables nested in its cells), each a list of cell texts.
    fn table_rows(
        &mut self,
        table: ElementRef,
        depth: usize,
    ) -> Result<Vec<Vec<String>>, ExtractError> {
        let mut rows = Vec::new();
        let sections = std::iter::once(table).chain(
            table
                .child_elements()
                .filter(|e| matches!(e.value().name(), "thead" | "tbody" | "tfoot")),
        );
        for section in sections {
            for row in section
                .child_elements()
                .filter(|e| e.value().name() == "tr")
            {
                let mut cells = Vec::new();
                for cell in row
                    .child_elements()
                    .filter(|e| matches!(e.value().name(), "td" | "th"))
                {
                    let text = self.inline_text(cell, depth + 3)?;
                    let span: usize = cell
                        .attr("colspan")
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(1);
                    cells.push(text);
                    cells.extend(std::iter::repeat_n(String::new(), span.clamp(1, 64) - 1));
                }
                if cells.iter().any(|c| !c.is_empty()) {
                    rows.push(cells);
                }
            }
        }
        Ok(rows)
    }

    /// Adds text to the block: whitespace runs collapsed to one space, controls dropped.
    fn push_text(&mut self, text: &str) {
        let mut rest = text;
        loop {
            // A run of ordinary characters goes in whole.
            let run = rest
                .find(|c: char| c.is_whitespace() || c.is_control())
                .unwrap_or(rest.len());
            self.inline.push_str(&rest[..run]);
            rest = &rest[run..];
            let Some(c) = rest.chars().next() else {
                return;
            };
            rest = &rest[c.len_utf8()..];
            if c.is_whitespace() && !self.inline.is_empty() && !self.inline.ends_with([' ', '\n']) {
                self.inline.push(' ');
            }
        }
    }

    fn push_break(&mut self) {
        if self.inline_only > 0 {
            self.push_text(" ");
        } else {
            let trimmed = self.inline.trim_end_matches(' ').len();
            self.inline.truncate(trimmed);
            if !self.inline.is_empty() {
                self.inline.push('\n');
            }
        }
    }

    /// Ends the block being gathered (inside cells and items: a word break).
    fn flush(&mut self) -> Result<(), ExtractError> {
        if self.inline_only > 0 {
            self.push_text(" ");
            return Ok(());
        }
        let mut block = std::mem::take(&mut self.inline);
        let lines: Vec<&str> = block
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        match lines.as_slice() {
            [] => {}
            // One line (most paragraphs) goes in as it is.
            [line] => self.push_block(line)?,
            lines => self.push_block(&lines.join("\n"))?,
        }
        // The buffer is kept for the next block.
        block.clear();
        self.inline = block;
        Ok(())
    }

    fn push_block(&mut self, block: &str) -> Result<(), ExtractError> {
        let separator = if self.out.is_empty() { "" } else { "\n\n" };
        self.budget.add_text(separator.len() + block.len())?;
        self.out.push_str(separator);
        self.out.push_str(block);
        Ok(())
    }
}

fn collapse_text(el: ElementRef) -> String {
    collapse(&el.text().collect::<String>())
}
