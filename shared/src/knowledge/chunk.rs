//! Cutting extracted documents into chunks for embedding and retrieval.
//!
//! Structure first, size second: each [`Part`]'s Markdown is read into blocks (headings,
//! paragraphs, list items, fenced code, table rows), and blocks are packed in reading order
//! into chunks of about [`ChunkSettings::size_tokens`]. What makes the chunks retrieve well:
//!
//! - **Self-contained**: every chunk starts with its context line, the document title and the
//!   heading path it sits under ("CreateTable > Requests > Syntax"), so a chunk about "the
//!   limit" still says which service and page it is about, for the embedding, for full-text
//!   search and for the model reading it.
//! - **Tables keep their header**: a table is cut between rows, never inside one, and every
//!   chunk holding rows of a table starts its rows with the table's header and delimiter row,
//!   so "| Resource | Default limit |" explains each row wherever it lands.
//! - **Blocks stay whole** where they fit; a block larger than a chunk is split at sentence,
//!   then line, then word boundaries.
//! - **Overlap**: consecutive chunks of running text share up to
//!   [`ChunkSettings::overlap_tokens`] of trailing blocks, so a fact cut by a chunk boundary
//!   is whole in one of the two. A new section starting a chunk gets no overlap: it has its
//!   own context line instead.
//! - **Link targets are dropped** (`[text](target)` becomes `text`): relative file names and
//!   URLs cost tokens and add noise to the embedding; citations come from the location.
//!
//! Chunks never span parts (a PDF page, a CSV row, a web page), so each has one [`Location`].
//!
//! Tokens are estimated, not counted by a tokenizer: an alphanumeric run of up to 9 characters
//! counts one token, plus one per started 5 characters beyond (WordPiece cuts long and rare
//! words), every other symbol one, and a seventh is added (calibrated against
//! all-MiniLM-L6-v2's tokenizer on the aws-docs-qa chunks, where the plain count fell 13% short).
//! It is far faster than running the tokenizer; the default size of 200 leaves room below the
//! model's 256-token window for estimates that fall short on unusual text.

use super::{Extracted, Location, Part};

/// How big chunks are: the agent's `chunk_size_tokens` and `chunk_overlap_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSettings {
    /// Target size of a chunk in (estimated) tokens, context line included.
    pub size_tokens: usize,
    /// How many tokens of trailing text a chunk repeats from the one before.
    pub overlap_tokens: usize,
}

impl Default for ChunkSettings {
    /// The `agents` table's defaults: 200 tokens, 30 of overlap.
    fn default() -> Self {
        ChunkSettings {
            size_tokens: 200,
            overlap_tokens: 30,
        }
    }
}

/// Smallest chunk size honoured; smaller settings are raised to it.
const MIN_SIZE_TOKENS: usize = 32;

/// One piece of a document, ready to be embedded and stored in `knowledge_chunks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based, sequential over the whole document (`knowledge_chunks.position`).
    pub position: u32,
    /// The text: context line, blank line, then the Markdown of the chunk's blocks.
    pub content: String,
    /// The part's location, with `section` set to the heading path the chunk starts under.
    pub location: Location,
    /// Estimated tokens of `content` (see the module documentation).
    pub token_count: u32,
}

/// The most bytes of one chunk (`knowledge_chunks.content` allows 20,000 characters).
const MAX_CHUNK_BYTES: usize = 16_000;

/// Cuts `doc` into chunks, part after part, in reading order. Empty parts give no chunks.
pub fn chunk(doc: &Extracted, settings: &ChunkSettings) -> Vec<Chunk> {
    let size = settings.size_tokens.max(MIN_SIZE_TOKENS);
    let overlap = settings.overlap_tokens.min(size / 2);
    let title = doc
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let mut out = Vec::new();
    for part in &doc.parts {
        Packer::new(title, part, size, overlap, &mut out).run();
    }
    out
}

/// Estimated WordPiece tokens of `text` (see the module documentation). One pass over the bytes.
pub fn estimate_tokens(text: &str) -> usize {
    let mut tokens = 0;
    let mut run = 0usize;
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() {
            run += 1;
            continue;
        }
        if run > 0 {
            tokens += word_tokens(run);
            run = 0;
        }
        // Punctuation is a token of its own; of a multi-byte character count the lead byte only.
        if b.is_ascii_punctuation() || b >= 0xC0 {
            tokens += 1;
        }
    }
    if run > 0 {
        tokens += word_tokens(run);
    }
    // Calibration: on the aws-docs-qa chunks the count above fell 13% short of the tokenizer's
    // (numbers, identifiers and URLs split finer than the rule assumes).
    tokens + tokens / 7
}

/// Tokens of an alphanumeric run: common words up to 9 letters are one WordPiece, longer runs
/// (identifiers, rare words) one more per started 5 characters.
fn word_tokens(len: usize) -> usize {
    1 + len.saturating_sub(9).div_ceil(5)
}

/// What a block of Markdown is; decides how it is joined to its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Paragraph,
    ListItem,
    Code,
    /// A row of the table with this index (into `Packer::tables`).
    Row(usize),
    /// A heading inside a chunk's body (a small section following another one).
    Heading,
}

/// A unit of packing: a whole block or a piece of an oversized one.
#[derive(Debug, Clone)]
struct Piece {
    text: String,
    tokens: usize,
    kind: Kind,
}

/// A table's header and delimiter rows, repeated before its rows in every chunk.
struct Table {
    header: String,
    tokens: usize,
}

/// The chunk being filled.
#[derive(Default)]
struct Pending {
    pieces: Vec<Piece>,
    /// Body tokens, table headers included.
    tokens: usize,
    /// True once a piece that is not overlap from the chunk before was added.
    fresh: bool,
    /// Index of the first fresh piece (pieces before it are overlap).
    fresh_from: usize,
    /// The section the chunk starts in.
    section: Section,
}

/// A heading path and the body tokens a chunk starting under it has room for (computed once
/// per heading, not per block).
#[derive(Default, Clone)]
struct Section {
    path: Vec<String>,
    budget: usize,
}

struct Packer<'a> {
    title: Option<&'a str>,
    part: &'a Part,
    size: usize,
    overlap: usize,
    out: &'a mut Vec<Chunk>,
    /// Current heading path: (level, text).
    headings: Vec<(usize, String)>,
    /// The section `headings` make.
    section: Section,
    tables: Vec<Table>,
    pending: Pending,
}

impl<'a> Packer<'a> {
    fn new(
        title: Option<&'a str>,
        part: &'a Part,
        size: usize,
        overlap: usize,
        out: &'a mut Vec<Chunk>,
    ) -> Self {
        let mut packer = Packer {
            title,
            part,
            size,
            overlap,
            out,
            headings: Vec::new(),
            section: Section::default(),
            tables: Vec::new(),
            pending: Pending::default(),
        };
        packer.section = packer.current_section();
        packer
    }

    fn run(mut self) {
        let markdown = &self.part.markdown;
        let mut lines = markdown.lines().peekable();
        // The block being read: its text and kind.
        let mut block: Option<(String, Kind)> = None;
        let mut table: Option<usize> = None;
        let mut fence: Option<&str> = None;

        while let Some(line) = lines.next() {
            let trimmed = line.trim();
            if let Some(marker) = fence {
                let (text, _) = block.as_mut().expect("a fence is open inside a code block");
                text.push('\n');
                text.push_str(line.trim_end());
                if trimmed.starts_with(marker) && trimmed.trim_start_matches(marker).is_empty() {
                    fence = None;
                    self.block(block.take());
                }
                continue;
            }
            if trimmed.is_empty() {
                self.block(block.take());
                table = None;
                continue;
            }
            if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
                self.block(block.take());
                table = None;
                fence = Some(marker);
                block = Some((trimmed.to_owned(), Kind::Code));
                continue;
            }
            if let Some((level, text)) = atx_heading(trimmed) {
                self.block(block.take());
                table = None;
                self.heading(level, text);
                continue;
            }
            // Setext heading: a single-line paragraph underlined with = or -.
            if let Some((text, Kind::Paragraph)) = &block
                && !text.contains('\n')
                && let Some(level) = setext_level(trimmed)
            {
                let text = block.take().expect("matched above").0;
                self.heading(level, &text);
                continue;
            }
            if trimmed.starts_with('|') {
                if let Some(index) = table {
                    self.block(block.take());
                    block = Some((clean_inline(trimmed), Kind::Row(index)));
                    continue;
                }
                if let Some(delimiter) = lines.peek().map(|l| l.trim())
                    && is_table_delimiter(delimiter)
                {
                    self.block(block.take());
                    let header = format!("{}\n{delimiter}", clean_inline(trimmed));
                    let tokens = estimate_tokens(&header);
                    self.tables.push(Table { header, tokens });
                    table = Some(self.tables.len() - 1);
                    lines.next();
                    continue;
                }
            }
            if is_list_item(trimmed) {
                self.block(block.take());
                table = None;
                block = Some((clean_inline(trimmed), Kind::ListItem));
                continue;
            }
            // Continuation of the current paragraph or list item (table rows are one line).
            match &mut block {
                Some((text, Kind::Paragraph | Kind::ListItem)) => {
                    text.push('\n');
                    text.push_str(&clean_inline(trimmed));
                }
                _ => {
                    self.block(block.take());
                    table = None;
                    block = Some((clean_inline(trimmed), Kind::Paragraph));
                }
            }
        }
        self.block(block.take());
        self.flush(false);
    }

    /// A heading: closes the chunk if it is well filled (a new section starts a new chunk),
    /// otherwise stays in the body so the small section that follows keeps its title.
    fn heading(&mut self, level: usize, text: &str) {
        let text = clean_inline(text.trim());
        if self.pending.fresh && self.pending.tokens >= self.size / 2 {
            self.flush(false);
        }
        self.headings.retain(|(l, _)| *l < level);
        self.headings.push((level, text.clone()));
        self.section = self.current_section();
        if self.pending.fresh {
            let text = format!("{} {text}", "#".repeat(level));
            let tokens = estimate_tokens(&text);
            self.push(Piece {
                text,
                tokens,
                kind: Kind::Heading,
            });
        } else {
            // Nothing but overlap yet: the chunk starts in the new section, without overlap.
            self.pending = Pending::default();
        }
    }

    /// Packs one finished block, splitting it first if it cannot fit any chunk.
    fn block(&mut self, block: Option<(String, Kind)>) {
        let Some((text, kind)) = block else { return };
        let tokens = estimate_tokens(&text);
        if tokens == 0 {
            return;
        }
        let room = self.section.budget.saturating_sub(self.table_cost(kind));
        if tokens <= room {
            self.add(Piece { text, tokens, kind });
            return;
        }
        for text in split_oversized(&text, room.max(MIN_SIZE_TOKENS / 2)) {
            let tokens = estimate_tokens(&text);
            self.add(Piece { text, tokens, kind });
        }
    }

    /// Adds a piece of new content, closing the chunk first when it would overflow.
    fn add(&mut self, piece: Piece) {
        if self.pending.pieces.is_empty() {
            self.pending.section = self.section.clone();
        }
        let cost = piece.tokens + self.header_cost(piece.kind);
        if self.pending.tokens + cost > self.pending.section.budget {
            if self.pending.fresh {
                // A heading closing the chunk belongs to the next one (its context line).
                while self.pending.pieces.last().map(|p| p.kind) == Some(Kind::Heading) {
                    let heading = self.pending.pieces.pop().expect("checked");
                    self.pending.tokens -= heading.tokens;
                }
                self.flush(true);
                self.pending.section = self.section.clone();
            } else {
                // Only overlap so far and the piece does not fit beside it: drop the overlap.
                self.pending = Pending {
                    section: self.section.clone(),
                    ..Pending::default()
                };
            }
            // The overlap carried over may itself leave no room.
            let cost = piece.tokens + self.header_cost(piece.kind);
            if self.pending.tokens + cost > self.pending.section.budget {
                self.pending = Pending {
                    section: self.section.clone(),
                    ..Pending::default()
                };
            }
        }
        if !self.pending.fresh {
            self.pending.fresh = true;
            self.pending.fresh_from = self.pending.pieces.len();
        }
        self.push(piece);
    }

    fn push(&mut self, piece: Piece) {
        self.pending.tokens += piece.tokens + self.header_cost(piece.kind);
        self.pending.pieces.push(piece);
    }

    /// Tokens a table header adds when `kind` is the first row of its table in the chunk.
    fn header_cost(&self, kind: Kind) -> usize {
        match (kind, self.pending.pieces.last()) {
            (Kind::Row(t), Some(last)) if last.kind == Kind::Row(t) => 0,
            (Kind::Row(t), _) => self.tables[t].tokens,
            _ => 0,
        }
    }

    fn table_cost(&self, kind: Kind) -> usize {
        match kind {
            Kind::Row(t) => self.tables[t].tokens,
            _ => 0,
        }
    }

    /// The section of the current heading path.
    fn current_section(&self) -> Section {
        let mut path: Vec<String> = self.headings.iter().map(|(_, t)| t.clone()).collect();
        // A first heading repeating the title (`# CreateTable` in "CreateTable") says nothing new.
        if let (Some(title), Some(first)) = (self.title, path.first())
            && first.eq_ignore_ascii_case(title)
        {
            path.remove(0);
        }
        let budget = self.body_budget(&path);
        Section { path, budget }
    }

    /// The context line of a chunk starting in `section`: title and heading path.
    fn context(&self, section: &[String]) -> String {
        let mut parts: Vec<&str> = Vec::with_capacity(section.len() + 2);
        if let Some(title) = self.title {
            parts.push(title);
        }
        if let Some(outer) = self.part.location.section.as_deref() {
            parts.push(outer);
        }
        parts.extend(section.iter().map(String::as_str));
        parts.join(" > ")
    }

    /// Body tokens available beside the context line of `section`: never below half a chunk,
    /// whatever the headings' length.
    fn body_budget(&self, section: &[String]) -> usize {
        let context = estimate_tokens(&self.context(section));
        self.size.saturating_sub(context).max(self.size / 2)
    }

    /// Emits the pending chunk (if it has new content); with `overlap`, the next chunk starts
    /// with this one's trailing pieces.
    fn flush(&mut self, overlap: bool) {
        let pending = std::mem::take(&mut self.pending);
        if !pending.fresh {
            return;
        }
        let context = self.context(&pending.section.path);
        let mut content = String::with_capacity(
            context.len()
                + pending
                    .pieces
                    .iter()
                    .map(|p| p.text.len() + 2)
                    .sum::<usize>(),
        );
        content.push_str(&context);
        let mut previous: Option<Kind> = None;
        for piece in &pending.pieces {
            if !content.is_empty() {
                let tight = matches!(
                    (previous, piece.kind),
                    (Some(Kind::ListItem), Kind::ListItem)
                ) || matches!((previous, piece.kind), (Some(Kind::Row(a)), Kind::Row(b)) if a == b);
                content.push_str(if tight { "\n" } else { "\n\n" });
            }
            if let Kind::Row(t) = piece.kind
                && previous != Some(piece.kind)
            {
                content.push_str(&self.tables[t].header);
                content.push('\n');
            }
            content.push_str(&piece.text);
            previous = Some(piece.kind);
        }
        if content.len() > MAX_CHUNK_BYTES {
            // Only a pathological block gets here (a table row longer than a page): cut it
            // rather than lose the whole document to the database's size check.
            let mut end = MAX_CHUNK_BYTES;
            while !content.is_char_boundary(end) {
                end -= 1;
            }
            content.truncate(end);
        }
        let mut location = self.part.location.clone();
        let mut section: Vec<&str> = Vec::new();
        section.extend(location.section.as_deref());
        section.extend(pending.section.path.iter().map(String::as_str));
        location.section = (!section.is_empty()).then(|| section.join(" > "));
        let token_count = estimate_tokens(&content);
        self.out.push(Chunk {
            position: u32::try_from(self.out.len()).unwrap_or(u32::MAX),
            content,
            location,
            token_count: u32::try_from(token_count).unwrap_or(u32::MAX),
        });

        if !overlap || self.overlap == 0 {
            return;
        }
        // Trailing whole pieces of new content, up to the overlap; headings are not carried.
        let mut carried = Vec::new();
        let mut tokens = 0;
        for piece in pending.pieces[pending.fresh_from..].iter().rev() {
            if piece.kind == Kind::Heading || tokens + piece.tokens > self.overlap {
                break;
            }
            tokens += piece.tokens;
            carried.push(piece.clone());
        }
        if carried.is_empty()
            && let Some(last) = pending.pieces.last()
            && matches!(last.kind, Kind::Paragraph | Kind::ListItem)
        {
            // The last piece alone is longer than the overlap: carry its tail.
            let text = tail_words(&last.text, self.overlap);
            let tokens = estimate_tokens(&text);
            if tokens > 0 {
                carried.push(Piece {
                    text,
                    tokens,
                    kind: last.kind,
                });
            }
        }
        self.pending.section = pending.section;
        for piece in carried.into_iter().rev() {
            self.push(piece);
        }
    }
}

/// `## Title ##` → (2, "Title").
fn atx_heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None; // "#hashtag", not a heading
    }
    let text = rest.trim().trim_end_matches('#').trim_end();
    (!text.is_empty()).then_some((level, text))
}

/// `===` → 1, `---` → 2 (under a paragraph line).
fn setext_level(line: &str) -> Option<usize> {
    if line.len() >= 2 && line.bytes().all(|b| b == b'=') {
        Some(1)
    } else if line.len() >= 2 && line.bytes().all(|b| b == b'-') {
        Some(2)
    } else {
        None
    }
}

/// `| --- | :---: |`: the line under a table's header.
fn is_table_delimiter(line: &str) -> bool {
    line.contains('-')
        && line.contains('|')
        && line
            .bytes()
            .all(|b| matches!(b, b'|' | b'-' | b':' | b' ' | b'\t'))
}

/// `- item`, `* item`, `+ item`, `1. item`, `1) item`.
fn is_list_item(line: &str) -> bool {
    let bytes = line.as_bytes();
    if bytes.len() >= 2 && matches!(bytes[0], b'-' | b'*' | b'+') && bytes[1] == b' ' {
        return true;
    }
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=9).contains(&digits)
        && bytes.len() > digits + 1
        && matches!(bytes[digits], b'.' | b')')
        && bytes[digits + 1] == b' '
}

/// `[text](target)` → `text`, `![alt](src)` → `alt`; everything else unchanged.
fn clean_inline(text: &str) -> String {
    if !text.contains("](") {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            let open = if i > 0 && bytes[i - 1] == b'!' {
                i - 1
            } else {
                i
            };
            if let Some(close) = text[i + 1..].find(']').map(|c| i + 1 + c)
                && bytes.get(close + 1) == Some(&b'(')
                && let Some(end) = link_target_end(&bytes[close + 2..]).map(|e| close + 2 + e)
            {
                out.push_str(&text[copied..open]);
                out.push_str(&text[i + 1..close]);
                copied = end + 1;
                i = end + 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Index of the `)` closing a link target (one level of nested parentheses allowed, no spaces
/// outside a title).
fn link_target_end(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(i),
            b')' => depth -= 1,
            b'\n' => return None,
            _ => {}
        }
    }
    None
}

/// Splits a block larger than `max` tokens at sentence ends, then lines, then words, into
/// pieces of at most `max` tokens; a single "word" longer than that (a pasted hash, base64) is
/// cut into pieces of `max` tokens' worth of characters.
fn split_oversized(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_tokens = 0;
    for unit in sentences(text) {
        let tokens = estimate_tokens(unit);
        if tokens > max {
            // A sentence longer than a chunk: words.
            for word in unit.split_whitespace().flat_map(|w| split_word(w, max)) {
                let t = estimate_tokens(word);
                if current_tokens + t > max && !current.is_empty() {
                    pieces.push(std::mem::take(&mut current));
                    current_tokens = 0;
                }
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(word);
                current_tokens += t;
            }
            continue;
        }
        if current_tokens + tokens > max && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
            current_tokens = 0;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(unit.trim());
        current_tokens += tokens;
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// `word` in pieces of at most `max` tokens (about four characters a token).
fn split_word(word: &str, max: usize) -> Vec<&str> {
    if estimate_tokens(word) <= max {
        return vec![word];
    }
    let mut pieces = Vec::new();
    let mut rest = word;
    while !rest.is_empty() {
        let mut end = rest.len().min(max.max(1) * 4);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let end = if end == 0 {
            rest.chars().next().map_or(rest.len(), char::len_utf8)
        } else {
            end
        };
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    pieces
}

/// Sentences and lines of `text`: cut after `. `, `? `, `! ` and at line breaks.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            let end = b == b'\n'
                || (matches!(b, b'.' | b'?' | b'!') && bytes.get(i).is_some_and(|&n| n == b' '));
            if end {
                let sentence = &text[start..i];
                start = i;
                if !sentence.trim().is_empty() {
                    return Some(sentence);
                }
            }
        }
        if start < bytes.len() {
            let rest = &text[start..];
            start = bytes.len();
            if !rest.trim().is_empty() {
                return Some(rest);
            }
        }
        None
    })
}

/// The last words of `text` adding up to at most `max` tokens.
fn tail_words(text: &str, max: usize) -> String {
    let mut tokens = 0;
    let mut start = text.len();
    for (index, word) in text
        .split_whitespace()
        .rev()
        .map(|w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
    {
        tokens += estimate_tokens(word);
        if tokens > max {
            break;
        }
        start = index;
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(title: Option<&str>, markdown: &str) -> Extracted {
        Extracted {
            title: title.map(str::to_owned),
            parts: vec![Part {
                markdown: markdown.to_owned(),
                location: Location::default(),
            }],
        }
    }

    fn settings(size: usize, overlap: usize) -> ChunkSettings {
        ChunkSettings {
            size_tokens: size,
            overlap_tokens: overlap,
        }
    }

    fn sentence(i: usize) -> String {
        format!("Sentence number {i} talks about invoices and refunds for customers.")
    }

    #[test]
    fn token_estimates_follow_wordpiece_roughly() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("the cat sat"), 3);
        assert_eq!(estimate_tokens("Hello, world!"), 4);
        // Long identifiers cost more than one token.
        assert!(estimate_tokens("ProvisionedThroughputExceededException") >= 6);
        assert_eq!(estimate_tokens("東京"), 2);
    }

    #[test]
    fn a_short_document_is_one_chunk_with_its_title_and_section() {
        let chunks = chunk(
            &doc(
                Some("Refunds"),
                "# Refunds\n\n## How long\n\nRefunds take five days.",
            ),
            &ChunkSettings::default(),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].position, 0);
        assert_eq!(
            chunks[0].content,
            "Refunds > How long\n\nRefunds take five days."
        );
        assert_eq!(chunks[0].location.section.as_deref(), Some("How long"));
        assert_eq!(
            chunks[0].token_count as usize,
            estimate_tokens(&chunks[0].content)
        );
    }

    #[test]
    fn chunks_stay_near_the_size_and_positions_are_sequential() {
        let text: Vec<String> = (0..200).map(sentence).collect();
        let markdown = text
            .chunks(4)
            .map(|p| p.join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
        let chunks = chunk(&doc(Some("Billing"), &markdown), &settings(100, 15));
        assert!(chunks.len() > 10);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.position as usize, i);
            assert!(c.token_count <= 100, "chunk {i}: {} tokens", c.token_count);
            assert!(c.content.starts_with("Billing\n\n"), "{}", c.content);
        }
        // Every sentence is somewhere.
        for s in &text {
            assert!(chunks.iter().any(|c| c.content.contains(s.as_str())), "{s}");
        }
    }

    #[test]
    fn neighbouring_chunks_overlap() {
        let markdown = (0..40).map(sentence).collect::<Vec<_>>().join("\n\n");
        let chunks = chunk(&doc(None, &markdown), &settings(60, 20));
        assert!(chunks.len() > 3);
        for pair in chunks.windows(2) {
            let last_paragraph = pair[0].content.rsplit("\n\n").next().unwrap();
            assert!(
                pair[1].content.contains(last_paragraph),
                "{:?} not repeated in {:?}",
                last_paragraph,
                pair[1].content
            );
        }
        // Without overlap nothing is repeated.
        let chunks = chunk(&doc(None, &markdown), &settings(60, 0));
        let total: usize = chunks
            .iter()
            .map(|c| c.content.matches("Sentence number").count())
            .sum();
        assert_eq!(total, 40);
    }

    #[test]
    fn every_chunk_with_table_rows_repeats_the_header() {
        let mut markdown = String::from(
            "# Limits\n\nDefault quotas per account.\n\n| Resource | Default limit |\n| --- | --- |\n",
        );
        for i in 0..60 {
            markdown.push_str(&format!("| Resource kind {i} per region | {} |\n", i * 10));
        }
        markdown.push_str("\nRequest an increase in the console.");
        let chunks = chunk(&doc(Some("Service quotas"), &markdown), &settings(80, 10));
        let with_rows: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| c.content.contains("| Resource kind"))
            .collect();
        assert!(with_rows.len() > 2);
        for c in &with_rows {
            let header_at = c
                .content
                .find("| Resource | Default limit |\n| --- | --- |\n")
                .unwrap_or_else(|| panic!("no header in {:?}", c.content));
            assert!(header_at < c.content.find("| Resource kind").unwrap());
            assert!(c.content.starts_with("Service quotas > Limits\n\n"));
            // Rows are never cut.
            for line in c
                .content
                .lines()
                .filter(|l| l.starts_with("| Resource kind"))
            {
                assert!(line.ends_with('|'), "{line}");
            }
        }
        for i in 0..60 {
            let row = format!("| Resource kind {i} per region | {} |", i * 10);
            assert!(chunks.iter().any(|c| c.content.contains(&row)), "{row}");
        }
    }

    #[test]
    fn a_new_section_starts_a_new_chunk_once_the_current_one_is_well_filled() {
        // About 140 tokens: more than half a chunk.
        let long = (0..12).map(sentence).collect::<Vec<_>>().join(" ");
        let markdown =
            format!("# Guide\n\n## Setup\n\n{long}\n\n## Billing\n\nInvoices are monthly.");
        let chunks = chunk(&doc(Some("Guide"), &markdown), &settings(200, 30));
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert_eq!(
            chunks[1].content,
            "Guide > Billing\n\nInvoices are monthly."
        );
        assert_eq!(chunks[1].location.section.as_deref(), Some("Billing"));

        // Small sections share a chunk, each keeping its heading.
        let markdown = "## Setup\n\nInstall it.\n\n## Billing\n\nInvoices are monthly.";
        let chunks = chunk(&doc(Some("Guide"), markdown), &settings(200, 30));
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].content,
            "Guide > Setup\n\nInstall it.\n\n## Billing\n\nInvoices are monthly."
        );
    }

    #[test]
    fn lists_stay_together_and_code_fences_hide_headings() {
        let markdown = "Steps:\n\n1. Open settings\n2. Choose [Security](security.md#top)\n   and scroll\n3. Reset\n\n```\n# not a heading\nlet x = 1;\n```";
        let chunks = chunk(&doc(None, markdown), &ChunkSettings::default());
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].content,
            "Steps:\n\n1. Open settings\n2. Choose Security\nand scroll\n3. Reset\n\n```\n# not a heading\nlet x = 1;\n```"
        );
        assert_eq!(chunks[0].location.section, None);
    }

    #[test]
    fn a_giant_word_or_row_never_makes_an_oversized_chunk() {
        let word = "x".repeat(60_000);
        let row = format!("| a | b |\n| --- | --- |\n| {} | y |", "z ".repeat(20_000));
        for markdown in [word, row] {
            let chunks = chunk(&doc(None, &markdown), &settings(200, 30));
            assert!(!chunks.is_empty());
            assert!(chunks.iter().all(|c| c.content.len() <= MAX_CHUNK_BYTES));
        }
    }

    #[test]
    fn an_oversized_paragraph_is_split_at_sentences() {
        let paragraph = (0..50).map(sentence).collect::<Vec<_>>().join(" ");
        let chunks = chunk(&doc(None, &paragraph), &settings(64, 0));
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(c.token_count <= 64, "{}", c.token_count);
            assert!(c.content.ends_with("customers."), "{:?}", c.content);
        }
    }

    #[test]
    fn parts_keep_their_locations_and_empty_parts_give_nothing() {
        let doc = Extracted {
            title: Some("Manual".into()),
            parts: vec![
                Part {
                    markdown: "Page one text.".into(),
                    location: Location {
                        page: Some(1),
                        ..Location::default()
                    },
                },
                Part {
                    markdown: "  \n\n ".into(),
                    location: Location {
                        page: Some(2),
                        ..Location::default()
                    },
                },
                Part {
                    markdown: "## Warranty\n\nTwo years.".into(),
                    location: Location {
                        page: Some(3),
                        section: Some("Legal".into()),
                        ..Location::default()
                    },
                },
            ],
        };
        let chunks = chunk(&doc, &ChunkSettings::default());
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].location.page, Some(1));
        assert_eq!(chunks[0].content, "Manual\n\nPage one text.");
        assert_eq!(chunks[1].position, 1);
        assert_eq!(chunks[1].location.page, Some(3));
        assert_eq!(
            chunks[1].location.section.as_deref(),
            Some("Legal > Warranty")
        );
        assert_eq!(chunks[1].content, "Manual > Legal > Warranty\n\nTwo years.");
    }

    #[test]
    fn links_lose_their_targets_only() {
        assert_eq!(
            clean_inline("See [Primary Key](a.md#b(c)) and ![logo](x.png) [not a link] (x)"),
            "See Primary Key and logo [not a link] (x)"
        );
        assert_eq!(clean_inline("no links"), "no links");
    }
}
