//! The answer when no model is configured (the local default): the sentences of the retrieved
//! excerpts that best match the question, quoted with their sources. It never pretends to be a
//! generated answer: it says it is quoting.

use std::collections::HashSet;

use super::prompt::Citation;
use crate::knowledge::search::Hit;

/// Most sentences quoted.
const MAX_SENTENCES: usize = 3;
/// Longest quote, in characters.
const MAX_QUOTE_CHARS: usize = 700;

/// Words too common to say whether a sentence answers anything.
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "with", "this", "that", "from",
    "have", "has", "was", "were", "what", "when", "where", "which", "who", "why", "how", "can",
    "could", "should", "would", "does", "did", "doing", "into", "about", "there", "their", "them",
    "they", "then", "than", "will", "may", "might", "our", "out", "any", "all", "some", "its",
    "it's", "is", "do", "to", "of", "in", "on", "a", "an", "or", "i", "me", "my", "we", "be", "if",
    "at", "by", "as", "so", "no", "yes", "get", "use", "using", "want", "need", "please",
];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 2)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
}

/// A crude stem, so "refunds" matches "refund" and "billing" matches "billed".
fn stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(base) = word.strip_suffix(suffix)
            && base.len() >= 3
        {
            return base;
        }
    }
    word
}

/// Splits text into sentences (and list items / lines, which documentation is full of).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches(['#', '-', '*', '>', '|'])
            .trim();
        if line.is_empty() {
            continue;
        }
        let mut start = 0;
        let bytes = line.as_bytes();
        for (i, c) in line.char_indices() {
            let end = i + c.len_utf8();
            let at_boundary = matches!(c, '.' | '?' | '!')
                && bytes.get(end).is_none_or(|b| b.is_ascii_whitespace());
            if at_boundary {
                let sentence = line[start..end].trim();
                if !sentence.is_empty() {
                    out.push(sentence);
                }
                start = end;
            }
        }
        let rest = line[start..].trim();
        if !rest.is_empty() {
            out.push(rest);
        }
    }
    out
}

/// The extractive answer to `question` from `hits` (best first, already above the agent's
/// threshold), and the citations it quotes. When no sentence shares a word with the question
/// (a match by meaning only), the best excerpt's opening is quoted.
pub fn answer(question: &str, hits: &[Hit]) -> (String, Vec<Citation>) {
    let terms: HashSet<String> = words(question).map(|w| stem(&w).to_owned()).collect();
    // Score every sentence of the best few hits: question terms it contains, with a small
    // preference for better-ranked hits so ties go to the stronger excerpt.
    let mut scored: Vec<(f64, usize, usize, &str)> = Vec::new();
    for (rank, hit) in hits.iter().take(3).enumerate() {
        for (position, sentence) in sentences(&hit.content).into_iter().enumerate() {
            let found: HashSet<String> = words(sentence)
                .map(|w| stem(&w).to_owned())
                .filter(|w| terms.contains(w))
                .collect();
            if found.is_empty() {
                continue;
            }
            let score = found.len() as f64 + hit.similarity - rank as f64 * 0.25;
            scored.push((score, rank, position, sentence));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));

    let mut chosen: Vec<(usize, usize, &str)> = Vec::new();
    let mut length = 0;
    for (_, rank, position, sentence) in scored {
        if chosen.len() == MAX_SENTENCES || length + sentence.len() > MAX_QUOTE_CHARS {
            break;
        }
        length += sentence.len();
        chosen.push((rank, position, sentence));
    }
    if chosen.is_empty() {
        // Nothing shares a word with the question (the match is by meaning only): quote the
        // opening of the best excerpt.
        if let Some(best) = hits.first() {
            let opening: Vec<&str> = sentences(&best.content).into_iter().take(2).collect();
            chosen = opening
                .into_iter()
                .enumerate()
                .map(|(i, s)| (0, i, s))
                .collect();
        }
    }
    // Quote in document order: by excerpt rank, then position inside it.
    chosen.sort_by_key(|&(rank, position, _)| (rank, position));

    let mut citations: Vec<Citation> = Vec::new();
    let mut text = String::from("Here is what I found in our documentation:\n\n");
    for (rank, _, sentence) in &chosen {
        let hit = &hits[*rank];
        let index = match citations.iter().find(|c| c.chunk_id == hit.chunk_id) {
            Some(existing) => existing.index,
            None => {
                citations.push(Citation::of(citations.len() + 1, hit));
                citations.len()
            }
        };
        text.push_str(&format!("> {sentence} [{index}]\n"));
    }
    text.push_str("\nSources: ");
    let labels: Vec<String> = citations
        .iter()
        .map(|c| format!("[{}] {}", c.index, c.label()))
        .collect();
    text.push_str(&labels.join("; "));
    (text, citations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::Location;
    use uuid::Uuid;

    fn hit(content: &str, title: &str, similarity: f64) -> Hit {
        Hit {
            chunk_id: Uuid::new_v4(),
            source_id: Uuid::new_v4(),
            source: Some("https://docs.example.com/billing".into()),
            title: title.into(),
            source_type: "url".into(),
            content: content.into(),
            location: Location::default(),
            similarity,
            score: similarity,
        }
    }

    #[test]
    fn quotes_the_sentences_that_answer() {
        let hits = vec![
            hit(
                "# Billing\nWe bill monthly. Refunds are issued within 5 business days of a \
                 cancellation. Invoices are emailed.",
                "Billing",
                0.7,
            ),
            hit("Our office is in Lisbon. Parking is free.", "About", 0.4),
        ];
        let (text, citations) = answer("How long do refunds take after I cancel?", &hits);
        assert!(text.starts_with("Here is what I found"));
        assert!(
            text.contains("> Refunds are issued within 5 business days of a cancellation. [1]")
        );
        assert!(!text.contains("Lisbon"));
        assert!(text.ends_with("Sources: [1] Billing"));
        assert_eq!(citations.len(), 1);
        assert_eq!(
            citations[0].url.as_deref(),
            Some("https://docs.example.com/billing")
        );
    }

    #[test]
    fn meaning_only_match_quotes_the_opening() {
        let hits = vec![hit(
            "Passwords reset via email. Links expire.",
            "Account",
            0.6,
        )];
        let (text, citations) = answer("forgot login", &hits);
        assert!(text.contains("> Passwords reset via email. [1]"));
        assert_eq!(citations.len(), 1);
    }
}
