//! Turning byte offsets in a file into the `line:col` positions editors look for.

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Byte offset of the top-level `key = …` assignment in a TOML or JSON-ish text, used to
/// point at a key whose value is well-formed but not acceptable.
pub fn find_key(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let rest = trimmed
            .strip_prefix(key)
            .or_else(|| trimmed.strip_prefix(&format!("\"{key}\"")));
        if let Some(rest) = rest
            && (rest.trim_start().starts_with('=') || rest.trim_start().starts_with(':'))
        {
            return Some(offset + indent);
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé" is three bytes; the '=' after "bé " is the 4th character.
        assert_eq!(line_col(text, 10), (2, 4));
    }

    #[test]
    fn finds_top_level_keys_only_at_line_start() {
        let text = "name = \"x\"\nrole = \"names = y\"\n";
        assert_eq!(find_key(text, "role"), Some(11));
        assert_eq!(find_key(text, "names"), None);
    }
}
