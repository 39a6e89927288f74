//! `--include` / `--exclude` filtering with Python's `fnmatch.fnmatchcase` semantics (pure).
//!
//! `*` matches any run of characters including `/`, `?` one character, `[seq]` / `[!seq]` a set;
//! matching is case-sensitive; `\` counts as `/`; a pattern ending in `/` selects the folder.

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
}
