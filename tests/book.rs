//! The book's checker: the code and output shown in `book/` cannot drift from the crates.
//!
//! The book shows code only by including it from the crates that compile and are tested,
//! through `ANCHOR`/`ANCHOR_END` markers, and shows command output only by including insta
//! snapshots. That promise holds only if something checks it, so this test does:
//!
//! - [`check_includes`]: every `{{#include ...}}` names a file that exists and, for an
//!   anchor, a marker pair in that file. Line-number includes are refused, except for an
//!   insta `.snap` file, which must be included from the first line after its header.
//! - [`check_unused_anchors`]: every anchor in the Rust code is shown by some page, so an
//!   anchor cannot outlive the prose that explained it.
//! - [`check_lab_references`]: every lab stage's book reference (`"chNN-topic.md#heading"`)
//!   names a page and a heading that exist, as mdBook computes heading ids.
//! - [`check_code_blocks`]: no Rust is pasted into Markdown.
//! - `mdbook_builds_without_warnings`: `mdbook build` succeeds and prints no warning.
//!
//! Each check is a plain function from a repository root to a list of problems. The tests
//! at the bottom run each one on a small broken fixture (to prove it catches the mistake)
//! and all of them on the real repository.
//!
//! What mdBook does differently on its own: it reports a missing include file as an error
//! but still builds the book and exits with success, says nothing about a missing anchor
//! (the include is silently empty), and cannot know about an unused anchor or a line
//! number that now points at other lines.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use regex::Regex;

/// mdBook's link directives (`{{#include ...}}`, `{{#rustdoc_include ...}}`, ...), found as
/// mdBook's `links` preprocessor finds them: anywhere in a page, code blocks included. The
/// first alternative is an escaped directive (`\{{#include ...}}`), which mdBook prints as is.
static DIRECTIVE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\\\{\{#[^}]*\}\}|\{\{\s*#([a-zA-Z0-9_]+)\s+([^}]+)\}\}").expect("directive regex"));

/// The start and end markers of an anchor, with mdBook's own patterns.
static ANCHOR_START: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"ANCHOR:\s*([\w-]+)").expect("anchor start regex"));
static ANCHOR_END: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"ANCHOR_END:\s*([\w-]+)").expect("anchor end regex"));

/// A lab stage's book reference as a string literal in a chapter crate.
static LAB_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""(ch\d\d-[a-z0-9-]+\.md)#([a-z0-9-]+)""#).expect("lab reference regex"));

/// What a directive includes from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// The whole file: `{{#include FILE}}`.
    Whole,
    /// The lines between an anchor's markers: `{{#include FILE:NAME}}`.
    Anchor(String),
    /// Lines by number: `FILE:N`, `FILE:N:`, `FILE:N:M` or `FILE::M`. `start` is 1-based;
    /// `open_end` is true for `N:` (to the end of the file).
    Lines { start: Option<usize>, open_end: bool, spec: String },
}

/// One include directive in one page.
#[derive(Debug, Clone)]
struct Include {
    /// The page, as a path under the repository root.
    page: PathBuf,
    /// 1-based line of the directive in the page.
    line: usize,
    /// The directive as written, for messages.
    text: String,
    /// The included file, resolved relative to the page and normalised.
    file: PathBuf,
    part: Part,
}

/// Splits an include target the way mdBook does: `PATH`, then after the first `:` either
/// an anchor name or a line range.
fn parse_target(target: &str) -> (&str, Part) {
    let Some((path, rest)) = target.split_once(':') else {
        return (target, Part::Whole);
    };
    let mut pieces = rest.splitn(2, ':');
    let first = pieces.next().unwrap_or("");
    let second = pieces.next();
    if !first.is_empty() && first.parse::<usize>().is_err() {
        return (path, Part::Anchor(first.to_string()));
    }
    let part = Part::Lines {
        start: first.parse().ok(),
        open_end: second.is_some_and(|s| s.parse::<usize>().is_err()),
        spec: rest.to_string(),
    };
    (path, part)
}

/// Every include in every page under `book/src`, plus problems with directives that are
/// not includes at all (an unknown directive is printed as is by mdBook).
fn find_includes(root: &Path) -> (Vec<Include>, Vec<String>) {
    let mut includes = Vec::new();
    let mut problems = Vec::new();
    for page in files_under(&root.join("book/src"), "md") {
        let text = read(&page);
        let dir = page.parent().unwrap_or(root);
        for caps in DIRECTIVE.captures_iter(&text) {
            let (Some(kind), Some(args)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            let whole = caps.get(0).map_or("", |m| m.as_str());
            let line = line_of(&text, caps.get(0).map_or(0, |m| m.start()));
            let here = format!("{}:{line}", rel(root, &page));
            match kind.as_str() {
                "include" | "rustdoc_include" | "playground" | "playpen" => {}
                // `{{#title ...}}` sets the page title; it names no file.
                "title" => continue,
                other => {
                    problems.push(format!("{here}: `{whole}`: mdBook has no `#{other}` directive"));
                    continue;
                }
            }
            let target = args.as_str().split_whitespace().next().unwrap_or("");
            let (path, part) = parse_target(target);
            let part = if kind.as_str().starts_with("play") { Part::Whole } else { part };
            includes.push(Include {
                page: page.clone(),
                line,
                text: whole.to_string(),
                file: normalize(&dir.join(path)),
                part,
            });
        }
    }
    (includes, problems)
}

/// Check (a) and (b): includes name existing files and anchors; line numbers only for
/// snapshots, and then exactly from the line after insta's header.
fn check_includes(root: &Path) -> Vec<String> {
    let (includes, mut problems) = find_includes(root);
    for inc in &includes {
        let here = format!("{}:{}: `{}`", rel(root, &inc.page), inc.line, inc.text);
        if !inc.file.is_file() {
            problems.push(format!("{here}: no such file {}", rel(root, &inc.file)));
            continue;
        }
        let is_snapshot = inc.file.extension().is_some_and(|e| e == "snap");
        match &inc.part {
            Part::Anchor(name) => {
                if let Err(why) = anchor_lines(&read(&inc.file), name) {
                    problems.push(format!("{here}: {why} in {}", rel(root, &inc.file)));
                }
            }
            Part::Whole if is_snapshot => problems.push(format!(
                "{here}: this would show insta's header; include the snapshot from the line after it{}",
                snapshot_hint(&inc.file)
            )),
            Part::Whole => {}
            Part::Lines { start, open_end, spec } if is_snapshot => match snapshot_content_start(&read(&inc.file)) {
                None => problems.push(format!(
                    "{here}: {} is not an insta snapshot (no `---` header of its own)",
                    rel(root, &inc.file)
                )),
                Some(first) if *start == Some(first) && *open_end => {}
                Some(first) => problems.push(format!(
                    "{here}: `:{spec}` does not start right after insta's header and run to the end; \
                         the content of {} starts at line {first}, so write `:{first}:`",
                    rel(root, &inc.file)
                )),
            },
            Part::Lines { spec, .. } => problems.push(format!(
                "{here}: includes by line numbers (`:{spec}`), which drift silently when the file changes; \
                 mark the lines with anchor comments and include `FILE:name` instead"
            )),
        }
    }
    problems
}

/// Check (c): every anchor in the Rust code is included by some page.
fn check_unused_anchors(root: &Path) -> Vec<String> {
    let (includes, _) = find_includes(root);
    let used: BTreeSet<(PathBuf, String)> = includes
        .into_iter()
        .filter_map(|inc| match inc.part {
            Part::Anchor(name) => Some((inc.file, name)),
            _ => None,
        })
        .collect();
    let mut sources = files_under(&root.join("chapters"), "rs");
    sources.extend(files_under(&root.join("src"), "rs"));
    sources.extend(files_under(&root.join("tests"), "rs"));
    let mut problems = Vec::new();
    for file in sources {
        let text = read(&file);
        let mut seen = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let Some(name) = ANCHOR_START.captures(line).and_then(|c| c.get(1)) else {
                continue;
            };
            let name = name.as_str().to_string();
            let here = format!("{}:{}", rel(root, &file), n + 1);
            if !seen.insert(name.clone()) {
                problems
                    .push(format!("{here}: anchor `{name}` appears twice in this file; mdBook shows only the first"));
            } else if !used.contains(&(file.clone(), name.clone())) {
                problems.push(format!(
                    "{here}: anchor `{name}` is not included by any page in book/src; show it with \
                     `{{{{#include ../../{}:{name}}}}}` or remove the markers",
                    rel(root, &file)
                ));
            }
        }
    }
    problems
}

/// Check (d): every lab stage's book reference names a page and a heading of it.
fn check_lab_references(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut crates: Vec<PathBuf> = fs::read_dir(root.join("chapters"))
        .map(|dir| dir.flatten().map(|e| e.path().join("src")).collect())
        .unwrap_or_default();
    crates.sort();
    let mut ids_of_page: HashMap<PathBuf, Option<Vec<String>>> = HashMap::new();
    for file in crates.iter().flat_map(|src| files_under(src, "rs")) {
        let text = read(&file);
        for caps in LAB_REFERENCE.captures_iter(&text) {
            let (page, fragment) = (&caps[1], &caps[2]);
            let here = format!(
                "{}:{}: \"{page}#{fragment}\"",
                rel(root, &file),
                line_of(&text, caps.get(0).map_or(0, |m| m.start()))
            );
            let path = root.join("book/src").join(page);
            let ids = ids_of_page
                .entry(path.clone())
                .or_insert_with(|| fs::read_to_string(&path).ok().map(|md| heading_ids(&md)));
            match ids {
                None => problems.push(format!("{here}: no page book/src/{page}")),
                Some(ids) if ids.iter().any(|id| id == fragment) => {}
                Some(ids) => problems.push(format!(
                    "{here}: book/src/{page} has no heading with id `{fragment}` (its ids: {})",
                    ids.join(", ")
                )),
            }
        }
    }
    problems
}

/// Check (e): code blocks hold no pasted Rust. A Rust block may only hold include
/// directives; a block without a language is Rust to `mdbook test`, so it must name one.
fn check_code_blocks(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for page in files_under(&root.join("book/src"), "md") {
        let text = read(&page);
        for block in code_blocks(&text) {
            let here = format!("{}:{}", rel(root, &page), block.line);
            let lang = block.info.split([',', ' ', '\t', '{']).next().unwrap_or("").to_ascii_lowercase();
            if lang.is_empty() {
                problems.push(format!(
                    "{here}: a code block without a language is Rust to `mdbook test`; \
                     name its language (```text, ```console, ```bash, ```yaml, ...)"
                ));
            } else if lang == "rust" || lang == "rs" {
                let only_includes = block.body.iter().all(|l| {
                    let l = l.trim();
                    l.is_empty() || DIRECTIVE.find(l).is_some_and(|m| m.start() == 0 && m.end() == l.len())
                });
                if !only_includes || block.body.iter().all(|l| l.trim().is_empty()) {
                    problems.push(format!(
                        "{here}: Rust pasted into the book; put the code in a crate where it is compiled \
                         and tested, mark it with anchor comments and include it with `{{{{#include ...:name}}}}`"
                    ));
                }
            }
        }
    }
    problems
}

/// All the checks that read files only.
fn check_all(root: &Path) -> Vec<String> {
    let mut problems = check_includes(root);
    problems.extend(check_unused_anchors(root));
    problems.extend(check_lab_references(root));
    problems.extend(check_code_blocks(root));
    problems
}

// ---------------------------------------------------------------------------------------
// Helpers: anchors, snapshots, headings, code blocks, files.

/// The 1-based line range strictly between the markers of anchor `name`, or why not.
fn anchor_lines(text: &str, name: &str) -> Result<(usize, usize), String> {
    let is = |re: &Regex, line: &str| re.captures(line).is_some_and(|c| &c[1] == name);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| is(&ANCHOR_START, l)).ok_or_else(|| format!("no anchor `{name}`"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| is(&ANCHOR_END, l))
        .ok_or_else(|| format!("anchor `{name}` has no end marker after its start (line {})", start + 1))?;
    Ok((start + 2, start + end + 1))
}

/// The 1-based line where an insta snapshot's content starts: the line after the second
/// `---` (insta writes `---`, `source: ...`, maybe `expression: ...` or `info: ...`, `---`).
fn snapshot_content_start(text: &str) -> Option<usize> {
    let mut lines = text.lines().enumerate();
    if lines.next()?.1.trim_end() != "---" {
        return None;
    }
    lines.find(|(_, l)| l.trim_end() == "---").map(|(n, _)| n + 2)
}

fn snapshot_hint(file: &Path) -> String {
    match snapshot_content_start(&read(file)) {
        Some(first) => format!(": `...{}:{first}:`", file.file_name().unwrap_or_default().to_string_lossy()),
        None => String::new(),
    }
}

/// The ids mdBook gives the headings of a page, in order.
///
/// mdBook renders the page, then makes an id from each heading's text: tags and HTML
/// entities dropped, then `normalize_id` (keep alphanumerics, `-` and `_`, lowercase ASCII,
/// whitespace to `-`, drop the rest). A repeated id gets `-1`, `-2`, ... A heading with an
/// attribute `{#custom-id}` keeps that id. The mdBook test below checks this function
/// against the ids of the real rendered book.
fn heading_ids(markdown: &str) -> Vec<String> {
    static ATX: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?[ \t]*$").expect("heading regex"));
    static CLOSING_HASHES: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?:^|[ \t]+)#+$").expect("closing hashes regex"));
    static SETEXT_UNDERLINE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^ {0,3}(?:=+|-+)[ \t]*$").expect("setext regex"));
    // Block quote and list item markers in front of a heading (`> ## x`, `- ## x`).
    static CONTAINER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^(?:\s*(?:>|[-*+]|\d+[.)])\s+)+").expect("container regex"));
    static CUSTOM_ID: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\s*\{#([^\s}]+)[^}]*\}$").expect("custom id regex"));

    let mut headings = Vec::new();
    let lines = lines_outside_code(markdown);
    for (i, raw) in lines.iter().enumerate() {
        let line = CONTAINER.replace(raw, "");
        if let Some(caps) = ATX.captures(&line) {
            let text = caps.get(1).map_or("", |m| m.as_str());
            headings.push(CLOSING_HASHES.replace(text, "").into_owned());
            continue;
        }
        // A one-line paragraph underlined with `===` or `---` (a setext heading).
        let paragraph = |j: usize| lines.get(j).is_some_and(|l| !l.trim().is_empty() && !ATX.is_match(l));
        let blank_before = i < 2 || lines.get(i - 2).is_none_or(|l| l.trim().is_empty());
        if SETEXT_UNDERLINE.is_match(raw) && i > 0 && paragraph(i - 1) && blank_before {
            headings.push(lines[i - 1].trim().to_string());
        }
    }

    let mut ids = Vec::new();
    let mut counter: HashMap<String, usize> = HashMap::new();
    for text in headings {
        if let Some(custom) = CUSTOM_ID.captures(&text) {
            ids.push(custom[1].to_string());
            continue;
        }
        let id = normalize_id(&heading_text(&text));
        let count = counter.entry(id.clone()).or_insert(0);
        ids.push(if *count == 0 { id.clone() } else { format!("{id}-{count}") });
        *count += 1;
    }
    ids
}

/// The text of a heading as it reads once rendered: code spans keep their content,
/// elsewhere links keep their text and markup is dropped.
fn heading_text(markdown: &str) -> String {
    static LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"!?\[([^\]]*)\]\([^)]*\)").expect("link regex"));
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^>]*>").expect("tag regex"));
    static ENTITY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"&[a-zA-Z0-9#]+;").expect("entity regex"));
    static EMPHASIS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(^|[^A-Za-z0-9_])_+|_+([^A-Za-z0-9_]|$)").expect("emphasis regex"));
    let mut out = String::new();
    for (i, piece) in markdown.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(piece);
            continue;
        }
        let piece = LINK.replace_all(piece, "$1");
        let piece = TAG.replace_all(&piece, "");
        let piece = ENTITY.replace_all(&piece, "");
        // `_emphasis_` and `__strong__` lose their underscores; `snake_case` keeps its own.
        let piece = EMPHASIS.replace_all(&piece, "$1$2");
        out.extend(piece.chars().filter(|c| *c != '*' && *c != '\\'));
    }
    out
}

/// mdBook's `normalize_id`.
fn normalize_id(text: &str) -> String {
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// A fenced code block: its info string, body lines, and the line of its opening fence.
struct CodeBlock<'a> {
    line: usize,
    info: &'a str,
    body: Vec<&'a str>,
}

/// The fenced code blocks of a page (``` or ~~~, indented or not, as in list items).
fn code_blocks(markdown: &str) -> Vec<CodeBlock<'_>> {
    static FENCE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\s*(`{3,}|~{3,})\s*(.*?)\s*$").expect("fence regex"));
    let mut blocks = Vec::new();
    let mut open: Option<(String, CodeBlock)> = None;
    for (n, line) in markdown.lines().enumerate() {
        match open.take() {
            None => {
                if let Some(caps) = FENCE.captures(line) {
                    let info = caps.get(2).map_or("", |m| m.as_str());
                    // A backtick fence's info string may not contain a backtick (that is inline code).
                    if !(caps[1].starts_with('`') && info.contains('`')) {
                        open = Some((caps[1].to_string(), CodeBlock { line: n + 1, info, body: Vec::new() }));
                    }
                }
            }
            Some((fence, mut block)) => {
                let t = line.trim();
                let closes = t.len() >= fence.len() && t.chars().all(|c| fence.starts_with(c));
                if closes {
                    blocks.push(block);
                } else {
                    block.body.push(line);
                    open = Some((fence, block));
                }
            }
        }
    }
    // An unclosed block runs to the end of the page, as in CommonMark.
    blocks.extend(open.map(|(_, b)| b));
    blocks
}

/// The lines of a page that are not inside a fenced code block.
fn lines_outside_code(markdown: &str) -> Vec<&str> {
    let inside: BTreeSet<usize> = code_blocks(markdown)
        .iter()
        .flat_map(|b| {
            let first = b.line; // the fence itself, 1-based
            first..=first + b.body.len() + 1
        })
        .collect();
    markdown.lines().enumerate().filter(|(n, _)| !inside.contains(&(n + 1))).map(|(_, l)| l).collect()
}

/// Files ending in `.ext` under `dir`, sorted; build output and hidden folders are skipped.
fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(_) if path.extension().is_some_and(|e| e == ext) => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// `a/b/../c` → `a/c`, without touching the file system (the file may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

fn read(path: &Path) -> String {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------
// Tests of the checker on fixtures, then of the real repository.

/// The markers, spelled so that this file's own text holds no anchor.
const START: &str = concat!("ANCHOR", ": ");
const END: &str = concat!("ANCHOR", "_END: ");

/// A throw-away repository: `book/src` pages and a chapter crate.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture { dir: tempfile::tempdir().expect("a temporary folder") }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, path: &str, text: &str) -> &Fixture {
        let path = self.root().join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
        fs::write(path, text).expect("write a fixture file");
        self
    }

    /// A chapter source with one anchored function, `greet`.
    fn with_greet(&self) -> &Fixture {
        let body = format!("// {START}greet\npub fn greet() {{}}\n// {END}greet\n");
        self.write("chapters/01-x/src/lib.rs", &body)
    }
}

fn assert_one_problem(problems: &[String], needles: &[&str]) {
    assert_eq!(problems.len(), 1, "expected exactly one problem, got {problems:#?}");
    for needle in needles {
        assert!(problems[0].contains(needle), "{:?} should mention {needle:?}", problems[0]);
    }
}

const GOOD_PAGE: &str = "# One\n\n```rust\n{{#include ../../chapters/01-x/src/lib.rs:greet}}\n```\n";

// A page whose includes, anchors and code blocks are all right has no problem.
#[test]
fn a_correct_fixture_has_no_problems() {
    let f = Fixture::new();
    f.with_greet().write("book/src/ch01-x.md", GOOD_PAGE);
    assert_eq!(check_all(f.root()), Vec::<String>::new());
}

// An include of a file that does not exist is reported with page, line and path.
#[test]
fn missing_include_file_is_reported() {
    let f = Fixture::new();
    f.with_greet()
        .write("book/src/ch01-x.md", &format!("{GOOD_PAGE}\n{{{{#include ../../chapters/01-x/src/gone.rs}}}}\n"));
    assert_one_problem(&check_includes(f.root()), &["book/src/ch01-x.md:7", "no such file chapters/01-x/src/gone.rs"]);
}

// An include of an anchor the file does not have is reported, and so is a start without an end.
#[test]
fn missing_anchor_is_reported() {
    let f = Fixture::new();
    f.with_greet().write("book/src/ch01-x.md", &GOOD_PAGE.replace(":greet", ":wave"));
    assert_one_problem(&check_includes(f.root()), &["no anchor `wave`", "chapters/01-x/src/lib.rs"]);

    f.write("chapters/01-x/src/lib.rs", &format!("// {START}greet\nfn greet() {{}}\n"));
    f.write("book/src/ch01-x.md", GOOD_PAGE);
    assert_one_problem(&check_includes(f.root()), &["anchor `greet` has no end marker"]);
}

// An anchor that no page includes is reported with its file, line and name.
#[test]
fn unused_anchor_is_reported() {
    let f = Fixture::new();
    f.with_greet().write("book/src/ch01-x.md", "# One\n");
    assert_one_problem(&check_unused_anchors(f.root()), &["chapters/01-x/src/lib.rs:1", "anchor `greet`"]);
    // Anchors in the binary's sources and in tests count too.
    f.write("book/src/ch01-x.md", GOOD_PAGE);
    f.write("tests/t.rs", &format!("// {START}helper\n// {END}helper\n"));
    assert_one_problem(&check_unused_anchors(f.root()), &["tests/t.rs:1", "anchor `helper`"]);
}

// Line-number includes of source files are refused: they drift silently.
#[test]
fn line_number_include_of_source_is_refused() {
    let f = Fixture::new();
    f.with_greet().write("book/src/ch01-x.md", &GOOD_PAGE.replace(":greet", ":2:2"));
    let problems: Vec<String> =
        check_all(f.root()).into_iter().filter(|p| !p.contains("not included by any page")).collect();
    assert_one_problem(&problems, &["includes by line numbers (`:2:2`)"]);
}

const SNAP: &str = "---\nsource: chapters/01-x/tests/cli.rs\nexpression: out\n---\nhello\nworld\n";

// A snapshot must be included from the first line after insta's header, to the end.
#[test]
fn snapshot_include_must_start_after_the_header() {
    let f = Fixture::new();
    f.write("chapters/01-x/tests/snapshots/cli__hello.snap", SNAP);
    let page = |spec: &str| {
        format!(
            "# One\n\n```console\n{{{{#include ../../chapters/01-x/tests/snapshots/cli__hello.snap{spec}}}}}\n```\n"
        )
    };

    f.write("book/src/ch01-x.md", &page(":5:"));
    assert_eq!(check_includes(f.root()), Vec::<String>::new());

    for bad in [":4:", ":6:", ":5", ":5:6"] {
        f.write("book/src/ch01-x.md", &page(bad));
        assert_one_problem(&check_includes(f.root()), &["starts at line 5, so write `:5:`"]);
    }
    f.write("book/src/ch01-x.md", &page(""));
    assert_one_problem(&check_includes(f.root()), &["insta's header", "cli__hello.snap:5:"]);

    // With `omit_expression` the header is one line shorter, and so is the offset.
    f.write("chapters/01-x/tests/snapshots/cli__hello.snap", "---\nsource: x.rs\n---\nhello\n");
    f.write("book/src/ch01-x.md", &page(":4:"));
    assert_eq!(check_includes(f.root()), Vec::<String>::new());
}

// A lab stage pointing at a heading the page does not have is reported; real ones pass.
#[test]
fn missing_lab_heading_is_reported() {
    let f = Fixture::new();
    f.write(
        "book/src/ch01-x.md",
        "# 1. One\n\n## IP forwarding\n\n## Custom {#my-id}\n\n```bash\n# not a heading\n```\n",
    );
    let stages = |book: &str| format!("fn lab() {{ Stage::new(\"a stage\", \"{book}\", check); }}\n");

    for good in ["ch01-x.md#ip-forwarding", "ch01-x.md#my-id", "ch01-x.md#1-one"] {
        f.write("chapters/01-x/src/lab.rs", &stages(good));
        assert_eq!(check_lab_references(f.root()), Vec::<String>::new(), "{good}");
    }
    f.write("chapters/01-x/src/lab.rs", &stages("ch01-x.md#not-a-heading"));
    assert_one_problem(
        &check_lab_references(f.root()),
        &["chapters/01-x/src/lab.rs:1", "no heading with id `not-a-heading`", "ip-forwarding"],
    );
    f.write("chapters/01-x/src/lab.rs", &stages("ch02-y.md#ip-forwarding"));
    assert_one_problem(&check_lab_references(f.root()), &["no page book/src/ch02-y.md"]);
}

// Rust pasted into a page is reported; a Rust block holding only an include is fine.
#[test]
fn pasted_rust_is_reported() {
    let f = Fixture::new();
    f.with_greet().write("book/src/ch01-x.md", &format!("{GOOD_PAGE}\n```rust,ignore\nfn main() {{}}\n```\n"));
    assert_one_problem(&check_code_blocks(f.root()), &["book/src/ch01-x.md:7", "Rust pasted"]);

    f.write("book/src/ch01-x.md", &format!("{GOOD_PAGE}\n```\nls /\n```\n\n```console\n$ ls /\n```\n"));
    assert_one_problem(&check_code_blocks(f.root()), &["book/src/ch01-x.md:7", "without a language"]);
}

// Heading ids follow mdBook: punctuation dropped, spaces to dashes, repeats numbered.
#[test]
fn heading_ids_follow_mdbook() {
    let md = "# 0. Your lab machine\n## `kthw doctor`: a preflight\n## Recap\n### Recap\n\
              ## If `Vec<T>` & *you* [link](x.md) fail ##\n## Named {#named .class}\n";
    assert_eq!(
        heading_ids(md),
        ["0-your-lab-machine", "kthw-doctor-a-preflight", "recap", "recap-1", "if-vect--you-link-fail", "named"]
    );
}

// Every check passes on the real repository (all problems are printed at once).
#[test]
fn the_real_book_passes_every_check() {
    let problems = check_all(&repo_root());
    assert!(problems.is_empty(), "{} problem(s) in the book:\n{}", problems.len(), problems.join("\n"));
}

/// mdBook: `$KTHW_MDBOOK`, else on `PATH`, else where `scripts/test.sh` installs it.
fn find_mdbook() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KTHW_MDBOOK").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    kthw_lab::host::which("mdbook").or_else(|| {
        let installed = PathBuf::from("/opt/kthw-tools/bin/mdbook");
        installed.is_file().then_some(installed)
    })
}

/// mdBook, or `None` after printing why the test is skipped; under `CI=true` a missing
/// mdBook fails the test instead, so CI cannot pass without building the book.
fn mdbook_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_mdbook();
    if found.is_none() {
        let msg = "mdbook is not installed (looked at $KTHW_MDBOOK, PATH and /opt/kthw-tools/bin/mdbook); \
                   install it with scripts/test.sh";
        assert!(!kthw_lab::systest::is_ci(), "{msg}");
        eprintln!("SKIPPED {test}: {msg}");
    }
    found
}

/// Builds the book in `book_dir` into a temporary folder and returns its problems: a
/// failed build, any `WARN` or `ERROR` line (mdBook reports a missing include as an
/// error but still exits with 0), and any page whose heading ids differ from what
/// [`heading_ids`] computes (the lab references are checked with that function).
fn mdbook_problems(mdbook: &Path, book_dir: &Path) -> Vec<String> {
    let dest = tempfile::tempdir().expect("a temporary folder");
    let out = match Command::new(mdbook).arg("build").arg(book_dir).arg("-d").arg(dest.path()).output() {
        Ok(out) => out,
        Err(e) => return vec![format!("cannot run {}: {e}", mdbook.display())],
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return vec![format!("`mdbook build` failed ({}):\n{stderr}", out.status)];
    }
    let mut problems: Vec<String> =
        stderr.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).map(|l| format!("mdbook: {l}")).collect();

    static HTML_ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"<h[1-6] id="([^"]+)""#).expect("html id regex"));
    let src = book_dir.join("src");
    for page in files_under(&src, "md") {
        let Ok(name) = page.strip_prefix(&src) else {
            continue;
        };
        let html = dest.path().join(name).with_extension("html");
        if name == Path::new("SUMMARY.md") || !html.is_file() {
            continue;
        }
        let html = read(&html);
        let rendered: Vec<&str> = HTML_ID.captures_iter(&html).filter_map(|c| c.get(1)).map(|m| m.as_str()).collect();
        let computed = heading_ids(&read(&page));
        if computed != rendered {
            problems.push(format!(
                "heading ids of {}: mdBook made {rendered:?}, this checker computes {computed:?}",
                name.display()
            ));
        }
    }
    problems
}

/// A one-page book in `dir` with this page text.
fn one_page_book(dir: &Path, page: &str) {
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
        fs::write(path, text).expect("write a fixture file");
    };
    write("book.toml", "[book]\ntitle = \"fixture\"\nsrc = \"src\"\n\n[build]\ncreate-missing = false\n");
    write("src/SUMMARY.md", "# Summary\n\n- [Page](page.md)\n");
    write("src/page.md", page);
}

// The real book builds without a warning, and its heading ids are the ones the lab
// references are checked against.
#[test]
fn mdbook_builds_without_warnings() {
    let Some(mdbook) = mdbook_or_skip("mdbook_builds_without_warnings") else {
        return;
    };
    let problems = mdbook_problems(&mdbook, &repo_root().join("book"));
    assert!(problems.is_empty(), "{} problem(s) building the book:\n{}", problems.len(), problems.join("\n"));
}

// A build that prints an error is caught, though mdBook itself exits with 0.
#[test]
fn mdbook_errors_fail_the_build_check() {
    let Some(mdbook) = mdbook_or_skip("mdbook_errors_fail_the_build_check") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    one_page_book(dir.path(), "# Page\n\n```text\n{{#include missing.txt}}\n```\n");
    let problems = mdbook_problems(&mdbook, dir.path());
    assert!(problems.iter().any(|p| p.contains("ERROR") && p.contains("missing.txt")), "{problems:#?}");
}

// Heading ids computed here match mdBook's on awkward headings: code, emphasis, links,
// HTML, punctuation, repeats, custom ids, setext, quoted and listed headings.
#[test]
fn heading_ids_match_mdbook_on_awkward_headings() {
    let Some(mdbook) = mdbook_or_skip("heading_ids_match_mdbook_on_awkward_headings") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let page = "# A page\n\n## Tricky `Vec<T>` & *em* [link](page.md) ##\n## Tricky `Vec<T>` & *em* [link](page.md)\n\
                ## snake_case and _emph_ and __strong__\n## C# and C++ — über \"quotes\" 'single'\n\
                ## Custom {#my-custom .cls}\n## Custom\n## 1.2.3 Numbers: a/b\\c\n## <span>html</span> inline\n\
                ## Trailing spaces   \n\nSetext heading\n--------------\n\n> ## Quoted heading\n\n- ## Listed heading\n\n\
                ```bash\n# a comment, not a heading\n```\n";
    one_page_book(dir.path(), page);
    let problems = mdbook_problems(&mdbook, dir.path());
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(heading_ids(page).len(), 13, "{:?}", heading_ids(page));
}
