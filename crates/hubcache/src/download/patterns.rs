//! `--include` / `--exclude` filtering with Python's `fnmatch.fnmatchcase` semantics (pure).
//!
//! `*` matches any run of characters including `/`, `?` one character, `[seq]` / `[!seq]` a set;
//! matching is case-sensitive; `\` counts as `/`; a pattern ending in `/` selects the folder.
//!
//! [`validate_pattern`] names the patterns that can never match a repo file (`..` segments, a
//! leading `/`, backslashes), for front ends that want to refuse them; [`Filter`] itself keeps
//! Python's behaviour and accepts anything.

use crate::repo::RepoPath;

/// Why a pattern can never select a repo file (see [`validate_pattern`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `..` segment: repo paths never climb out of the repo.
    #[error("pattern '{pattern}' has a `..` segment, but repo paths never leave the repo")]
    ParentSegment {
        /// The pattern as given.
        pattern: String,
    },
    /// A leading `/` or a drive (`C:`): repo paths are relative to the repo's root.
    #[error("pattern '{pattern}' is absolute, but repo paths are relative to the repo's root (write `config.json`, `sub/*`)")]
    Absolute {
        /// The pattern as given.
        pattern: String,
    },
    /// A backslash: repo paths separate folders with `/`.
    #[error("pattern '{pattern}' has a backslash, but repo paths separate folders with `/`")]
    Backslash {
        /// The pattern as given.
        pattern: String,
    },
}

/// Refuses a pattern that can never match a repo file: one with a `..` segment, a leading `/`
/// or drive, or a backslash (checked in that order, `\` read as `/` for the first two).
pub fn validate_pattern(pattern: &str) -> Result<(), PatternError> {
    let owned = || pattern.to_string();
    let slashed = pattern.replace('\\', "/");
    if slashed.split('/').any(|seg| seg == "..") {
        return Err(PatternError::ParentSegment { pattern: owned() });
    }
    let b = slashed.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    if slashed.starts_with('/') || drive {
        return Err(PatternError::Absolute { pattern: owned() });
    }
    if pattern.contains('\\') {
        return Err(PatternError::Backslash { pattern: owned() });
    }
    Ok(())
}

/// A listing split by a [`Filter`]: every file, and the ones it keeps (both in listing order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Every file of the listing.
    pub listed: Vec<RepoPath>,
    /// The files the filter keeps.
    pub selected: Vec<RepoPath>,
}

/// Whether `name` matches the shell pattern `pattern` (fnmatchcase).
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_at(&p, &n)
}

fn matches_at(p: &[char], n: &[char]) -> bool {
    // Iterative matcher with single-star backtracking (sufficient: stars are greedy-equivalent).
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(p, pi, n[ni]) {
                        if matched {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the set starting at `p[start] == '['`; `None` when the set is unclosed
/// (then `[` is literal, as in Python).
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = i < p.len() && p[i] == '!';
    if negate {
        i += 1;
    }
    let first = i;
    let mut matched = false;
    while i < p.len() {
        if p[i] == ']' && i > first {
            return Some((matched != negate, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

fn normalize(pattern: &str) -> String {
    let p = pattern.replace('\\', "/");
    if p.ends_with('/') {
        format!("{p}*")
    } else {
        p
    }
}

/// Allow/ignore lists as `snapshot_download` applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Filter {
    /// A filter from allow (`include`) and ignore (`exclude`) patterns.
    pub fn new(include: &[String], exclude: &[String]) -> Filter {
        Filter {
            include: include.iter().map(|p| normalize(p)).collect(),
            exclude: exclude.iter().map(|p| normalize(p)).collect(),
        }
    }

    /// Kept iff (no include list or some include matches) and no exclude matches.
    pub fn keeps(&self, path: &str) -> bool {
        let path = path.replace('\\', "/");
        (self.include.is_empty() || self.include.iter().any(|p| !p.is_empty() && fnmatch(p, &path)))
            && !self.exclude.iter().any(|p| !p.is_empty() && fnmatch(p, &path))
    }

    /// Splits `listing` into every file and the ones this filter keeps.
    pub fn select<'a>(&self, listing: impl IntoIterator<Item = &'a RepoPath>) -> Selection {
        let listed: Vec<RepoPath> = listing.into_iter().cloned().collect();
        let selected = listed.iter().filter(|p| self.keeps(p.as_str())).cloned().collect();
        Selection { listed, selected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_semantics() {
        assert!(fnmatch("*.txt", "dummy_file.txt"));
        assert!(fnmatch("*.txt", "subpath/file.txt"), "star crosses /");
        assert!(!fnmatch("*.txt", "file.bin"));
        assert!(fnmatch("data/*.json", "data/sub/x.json"));
        assert!(fnmatch("?.md", "a.md") && !fnmatch("?.md", "ab.md"));
        assert!(!fnmatch("*.MD", "a.md"), "case-sensitive");
        assert!(fnmatch(
            "model-0000[1-2]-of-*.safetensors",
            "model-00002-of-00003.safetensors"
        ));
        assert!(!fnmatch("model-0000[!1-2]*", "model-00002"));
        assert!(fnmatch("[abc", "[abc"), "unclosed set is literal");
        assert!(fnmatch("*", ""));
        assert!(fnmatch("a*b*c", "aXbYbZc"));
        assert!(!fnmatch("a*b*c", "aXbYbZ"));
        assert!(fnmatch("config.json", "config.json") && !fnmatch("config.json", "xconfig.json"));
        assert!(fnmatch("[]]", "]"));
    }

    #[test]
    fn filters() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let f = Filter::new(&s(&["path/to/"]), &[]);
        assert!(f.keeps("path/to/a/b.txt"));
        assert!(!f.keeps("nested/path/to/a.txt"));
        let f = Filter::new(&s(&[""]), &[]);
        assert!(!f.keeps("a"), "empty allow pattern selects nothing");
        let f = Filter::new(&[], &s(&[""]));
        assert!(f.keeps("a"), "empty ignore pattern removes nothing");
        let f = Filter::new(&s(&["*.pdf"]), &s(&[".*"]));
        assert!(f.keeps("a.pdf") && !f.keeps(".hidden.pdf"));
        let f = Filter::new(&s(&["sub\\*.txt"]), &[]);
        assert!(f.keeps("sub\\a.txt") && f.keeps("sub/a.txt"));
        let f = Filter::new(&s(&["*.json", "*.txt"]), &s(&["*.git*"]));
        assert!(f.keeps("a.json") && f.keeps("b.txt") && !f.keeps(".gitattributes") && !f.keeps("c.bin"));
    }

    #[test]
    fn patterns_that_cannot_match_are_named() {
        let kind = |p: &str| match validate_pattern(p) {
            Ok(()) => "ok",
            Err(PatternError::ParentSegment { pattern }) => {
                assert_eq!(pattern, p);
                "parent"
            }
            Err(PatternError::Absolute { .. }) => "absolute",
            Err(PatternError::Backslash { .. }) => "backslash",
        };
        for p in ["../*", "../../**", "sub/../x", "..", "../", "..\\*", "a\\..\\b", "*/.."] {
            assert_eq!(kind(p), "parent", "{p}");
        }
        for p in ["/etc/*", "/", "\\etc\\*", "C:/x", "c:*"] {
            assert_eq!(kind(p), "absolute", "{p}");
        }
        for p in ["sub\\*.txt", "a\\b"] {
            assert_eq!(kind(p), "backslash", "{p}");
        }
        for p in [
            "*", "*.json", "sub/", "..foo", "a..b/*", "x/...", "[!.]*", "", "dir:x/*", "**/*.bin",
        ] {
            assert_eq!(kind(p), "ok", "{p}");
        }
        let msg = validate_pattern("/etc/*").unwrap_err().to_string();
        assert!(msg.contains("'/etc/*'"), "{msg}");
    }

    #[test]
    fn selection_keeps_listing_order() {
        let paths: Vec<RepoPath> = ["a.json", "b.bin", "c.json"]
            .iter()
            .map(|p| RepoPath::new(p).unwrap())
            .collect();
        let sel = Filter::new(&["*.json".to_string()], &[]).select(&paths);
        assert_eq!(sel.listed, paths);
        assert_eq!(sel.selected, vec![paths[0].clone(), paths[2].clone()]);
        assert!(Filter::new(&["*.gguf".to_string()], &[])
            .select(&paths)
            .selected
            .is_empty());
    }
}
