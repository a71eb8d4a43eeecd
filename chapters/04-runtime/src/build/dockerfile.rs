//! The Dockerfile subset that `kthw build` understands, parsed into steps with line numbers.
//!
//! A Dockerfile is a list of instructions, one per *logical* line: a line that ends in
//! `\` continues on the next one, lines that start with `#` are comments (also inside a
//! continuation), blank lines are skipped. The keyword is case-insensitive (`run` is
//! `RUN`). We parse the whole file before the first step runs, so a typo on line 30 fails
//! the build at once, naming the file and line, instead of after ten minutes of `RUN`s.
//!
//! ```text
//! FROM busybox                      the base image, or `scratch` for none
//! ENV GREETING=hello NAME="a b"     config only: environment (also `ENV KEY value`)
//! WORKDIR /app                      config only: the working directory (relative to the last)
//! COPY index.html ./                a layer made from files of the build context
//! RUN echo built > /built           a layer made by running a container
//! EXPOSE 80                         config only: a port the image listens on
//! ENTRYPOINT ["httpd", "-f"]        config only: what runs ...
//! CMD ["-p", "80"]                  ... and its default arguments
//! ```
//!
//! ## Shell form and exec form
//!
//! `RUN`, `CMD` and `ENTRYPOINT` take a command in one of two forms. The **exec form** is a
//! JSON array, run as it is: `CMD ["httpd", "-f"]` execs `httpd` with the argument `-f`.
//! The **shell form** is everything else, and is handed to a shell: `CMD httpd -f` becomes
//! `["/bin/sh", "-c", "httpd -f"]`, so pipes, `&&` and `$VAR` work, and the image needs a
//! `/bin/sh`. An `ENTRYPOINT` in shell form *ignores* `CMD` and the arguments of `docker
//! run`: they are appended after the script, where `sh -c` takes them as `$0`, `$1`, ...
//! and the script does not use them.
//!
//! ## Variables
//!
//! `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}` are replaced with the
//! build's environment (the base image's plus every `ENV` so far) in the instructions
//! Docker substitutes: `ENV`, `LABEL`, `WORKDIR`, `USER`, `COPY`, `ADD` and `EXPOSE`. Not in
//! `RUN`, `CMD` and `ENTRYPOINT`: there the shell in the container expands them, when the
//! command runs. Single quotes keep `$` literal; `\$` too. So a [`Word`] is kept as parts
//! and expanded only when its step runs, because the environment is known only then.
//!
//! What Docker does differently: its parser (BuildKit's `frontend/dockerfile/parser`)
//! also knows `ARG`, multi-stage builds (`FROM ... AS name`, `COPY --from`), heredocs
//! (`RUN <<EOF`), parser directives (`# escape=`, `# syntax=`), `ONBUILD`, `HEALTHCHECK`,
//! `SHELL`, `VOLUME` and `STOPSIGNAL`; we refuse those with a message. A malformed exec
//! form (`CMD ['sh']`, single quotes are not JSON) is silently run by Docker as a *shell*
//! command — a classic trap — while we refuse it.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The file it was read from, for error messages.
    pub file: PathBuf,
    /// The instructions, `FROM` first.
    pub steps: Vec<Step>,
}

/// One instruction and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The line the instruction starts on, from 1.
    pub line: usize,
    /// The instruction as written, continuation lines joined: what `Step N/M :` prints.
    pub text: String,
    pub instruction: Instruction,
}

/// The instructions of our subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM image` or `FROM scratch`.
    From(String),
    /// `RUN`: a layer made by running a command in a container of the image so far.
    Run(Command),
    /// `CMD`: the default command, or the entrypoint's default arguments.
    Cmd(Command),
    /// `ENTRYPOINT`: the program the container runs.
    Entrypoint(Command),
    /// `COPY`: files of the build context into a layer.
    Copy(Copy),
    /// `ADD`: `COPY`, and a local tar archive is unpacked.
    Add(Copy),
    /// `ENV`: environment variables, in order.
    Env(Vec<(String, Word)>),
    /// `LABEL`: metadata of the image.
    Label(Vec<(String, Word)>),
    /// `WORKDIR`: the working directory, relative to the previous one.
    Workdir(Word),
    /// `EXPOSE`: ports, as `80`, `80/tcp` or `53/udp`.
    Expose(Vec<Word>),
    /// `USER`: the user (name or uid, optionally `:group`) that later steps and the container run as.
    User(Word),
}

/// A command in shell or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `RUN echo hi > /x`: a script for `/bin/sh -c`.
    Shell(String),
    /// `RUN ["echo", "hi"]`: the program and its arguments, run as they are.
    Exec(Vec<String>),
}

// ANCHOR: shell_rule
impl Command {
    /// What the container execs: the shell form becomes `/bin/sh -c SCRIPT`, as in
    /// Docker (whose `SHELL` instruction, which we do not have, changes that shell).
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
            Command::Exec(args) => args.clone(),
        }
    }
}
// ANCHOR_END: shell_rule

/// The arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Paths in the build context.
    pub sources: Vec<Word>,
    /// Where in the image; relative to `WORKDIR`; a trailing `/` means "into this directory".
    pub dest: Word,
    /// `--chown=UID[:GID]`: the owner of the copied files (default root).
    pub chown: Option<(u32, u32)>,
    /// `--chmod=MODE`: the permission bits of the copied files (default: the context's).
    pub chmod: Option<u32>,
}

/// A word of an instruction, with its `$VAR` references kept apart, to be expanded with
/// the environment of the step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `$NAME` or `${NAME}`.
    Var(String),
    /// `${NAME:-word}` (when unset or empty) or `${NAME:+word}` (when set and not empty).
    Modified {
        name: String,
        alternative: bool,
        word: Word,
    },
}

impl Word {
    /// Parses quotes, backslash escapes and variable references.
    ///
    /// # Errors
    /// An unclosed quote or `${`, or an unsupported `${...}` form, said in a sentence.
    pub fn parse(raw: &str) -> std::result::Result<Word, String> {
        let chars: Vec<char> = raw.chars().collect();
        let mut at = 0;
        let word = Self::parse_until(&chars, &mut at, None, true)?;
        Ok(word)
    }

    /// Parses `$` references only: for the elements of a JSON array, whose quotes and
    /// escapes JSON has already handled.
    fn parse_vars(raw: &str) -> std::result::Result<Word, String> {
        let chars: Vec<char> = raw.chars().collect();
        let mut at = 0;
        Self::parse_until(&chars, &mut at, None, false)
    }

    /// Parses from `chars[*at]` up to the end, or up to the unmatched `end` character.
    fn parse_until(
        chars: &[char],
        at: &mut usize,
        end: Option<char>,
        quotes: bool,
    ) -> std::result::Result<Word, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        while *at < chars.len() {
            let c = chars[*at];
            *at += 1;
            match c {
                c if Some(c) == end => {
                    push_text(&mut parts, &mut text);
                    return Ok(Word(parts));
                }
                '\\' if quotes => match chars.get(*at) {
                    Some(&next) => {
                        text.push(next);
                        *at += 1;
                    }
                    None => text.push('\\'),
                },
                '\'' if quotes => loop {
                    match chars.get(*at) {
                        Some('\'') => {
                            *at += 1;
                            break;
                        }
                        Some(&x) => {
                            text.push(x);
                            *at += 1;
                        }
                        None => return Err("a single quote (') is not closed".into()),
                    }
                },
                '"' if quotes => loop {
                    match chars.get(*at) {
                        Some('"') => {
                            *at += 1;
                            break;
                        }
                        Some('\\') if matches!(chars.get(*at + 1), Some('"' | '\\' | '$')) => {
                            text.push(chars[*at + 1]);
                            *at += 2;
                        }
                        Some('$') => {
                            *at += 1;
                            Self::parse_var(chars, at, &mut parts, &mut text)?;
                        }
                        Some(&x) => {
                            text.push(x);
                            *at += 1;
                        }
                        None => return Err("a double quote (\") is not closed".into()),
                    }
                },
                '$' => Self::parse_var(chars, at, &mut parts, &mut text)?,
                c => text.push(c),
            }
        }
        if end.is_some() {
            return Err("a ${ is not closed with }".into());
        }
        push_text(&mut parts, &mut text);
        Ok(Word(parts))
    }

    /// After a `$`: a reference, or a literal `$` when no name follows.
    fn parse_var(
        chars: &[char],
        at: &mut usize,
        parts: &mut Vec<Part>,
        text: &mut String,
    ) -> std::result::Result<(), String> {
        let is_start = |c: char| c.is_ascii_alphabetic() || c == '_';
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        match chars.get(*at) {
            Some('{') => {
                *at += 1;
                let start = *at;
                while chars.get(*at).is_some_and(|&c| is_name(c)) {
                    *at += 1;
                }
                let name: String = chars[start..*at].iter().collect();
                if name.is_empty() || !name.starts_with(is_start) {
                    return Err(format!("${{{name}...}} does not start with a variable name"));
                }
                push_text(parts, text);
                match (chars.get(*at), chars.get(*at + 1)) {
                    (Some('}'), _) => {
                        *at += 1;
                        parts.push(Part::Var(name));
                    }
                    (Some(':'), Some(op @ ('-' | '+'))) => {
                        let alternative = *op == '+';
                        *at += 2;
                        let word = Self::parse_until(chars, at, Some('}'), true)?;
                        parts.push(Part::Modified { name, alternative, word });
                    }
                    (None, _) => return Err("a ${ is not closed with }".into()),
                    _ => {
                        return Err(format!(
                            "${{{name}...}} uses a form we do not support; use ${{{name}}}, \
                             ${{{name}:-default}} or ${{{name}:+alternative}}"
                        ));
                    }
                }
            }
            Some(&c) if is_start(c) => {
                let start = *at;
                while chars.get(*at).is_some_and(|&c| is_name(c)) {
                    *at += 1;
                }
                push_text(parts, text);
                parts.push(Part::Var(chars[start..*at].iter().collect()));
            }
            _ => text.push('$'),
        }
        Ok(())
    }

    /// The word with every reference replaced from `env` (`KEY=value` entries, the last
    /// one of a key wins); an unset variable is empty, as in the shell.
    pub fn expand(&self, env: &[String]) -> String {
        let lookup = |name: &str| {
            env.iter().rev().find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
        };
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(name) => out.push_str(&lookup(name).unwrap_or_default()),
                Part::Modified { name, alternative, word } => {
                    let value = lookup(name).filter(|v| !v.is_empty());
                    match (value, alternative) {
                        (Some(v), false) => out.push_str(&v),
                        (None, false) | (Some(_), true) => out.push_str(&word.expand(env)),
                        (None, true) => {}
                    }
                }
            }
        }
        out
    }

    /// The text of a word without references (for checks at parse time).
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                _ => return None,
            }
        }
        Some(out)
    }
}

fn push_text(parts: &mut Vec<Part>, text: &mut String) {
    if !text.is_empty() {
        parts.push(Part::Text(std::mem::take(text)));
    }
}

/// Splits an argument string at unquoted whitespace, keeping quotes and escapes for
/// [`Word::parse`]: `a "b c" d\ e` gives `a`, `"b c"`, `d\ e`.
fn split_words(args: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut braces = 0usize; // inside ${...}, whitespace belongs to the default word
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() && braces == 0 => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            (None | Some('"'), '\\') => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None | Some('"'), '$') if chars.peek() == Some(&'{') => {
                word.push(c);
                word.push(chars.next().unwrap_or('{'));
                braces += 1;
                continue;
            }
            (None | Some('"'), '}') if braces > 0 => braces -= 1,
            _ => {}
        }
        word.push(c);
    }
    match quote {
        Some('\'') => return Err("a single quote (') is not closed".into()),
        Some(_) => return Err("a double quote (\") is not closed".into()),
        None => {}
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

/// Reads and parses the Dockerfile at `file`.
///
/// # Errors
/// If it cannot be read, or as [`parse`].
pub fn read(file: &Path) -> Result<Dockerfile> {
    let text = std::fs::read_to_string(file).map_err(Error::io("read the Dockerfile", file))?;
    parse(file, &text)
}

/// The logical lines of a Dockerfile with the number of the line each starts on:
/// comments and blank lines dropped, `\` continuations joined.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let is_skipped = |line: &str| {
        let t = line.trim();
        t.is_empty() || t.starts_with('#')
    };
    // A trailing `\` (spaces after it allowed) continues the instruction on the next line.
    let strip = |line: &str| match line.trim_end().strip_suffix('\\') {
        Some(rest) => (rest.to_string(), true),
        None => (line.trim_end().to_string(), false),
    };
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        if is_skipped(line) {
            continue;
        }
        let (mut joined, mut more) = strip(line.trim_start());
        while more {
            let Some((_, next)) = lines.next() else { break };
            if is_skipped(next) {
                continue; // Docker drops comments and blank lines inside a continuation too
            }
            let (part, again) = strip(next);
            joined.push_str(&part);
            more = again;
        }
        out.push((index + 1, joined.trim().to_string()));
    }
    out
}

/// The instructions we know but do not implement, and what to do instead.
const UNSUPPORTED: [(&str, &str); 7] = [
    ("ARG", "use ENV, or write the value into the Dockerfile"),
    ("VOLUME", "give the volume to `kthw run -v HOST:CONTAINER` instead"),
    ("ONBUILD", "write the instructions into the Dockerfiles that use this image"),
    ("HEALTHCHECK", "check the container from outside (e.g. with curl) instead"),
    ("SHELL", "write the shell into the command's exec form, e.g. RUN [\"/bin/bash\", \"-c\", \"...\"]"),
    ("STOPSIGNAL", "give the signal to `kthw stop`/`kthw kill` instead"),
    ("MAINTAINER", "use LABEL maintainer=\"...\" (MAINTAINER is deprecated in Docker too)"),
];

/// What we support, for the unknown-instruction message.
const SUPPORTED: &str = "FROM, RUN, COPY, ADD, ENV, WORKDIR, EXPOSE, CMD, ENTRYPOINT, LABEL, USER";

/// Parses a Dockerfile's text; `file` names it in errors.
///
/// # Errors
/// [`Error::Dockerfile`] naming the file, the line, what is wrong and how to fix it: an
/// unknown or unsupported instruction, a missing argument, bad JSON in an exec form, an
/// instruction before `FROM`, a second `FROM`, an unclosed quote.
pub fn parse(file: &Path, text: &str) -> Result<Dockerfile> {
    let mut steps: Vec<Step> = Vec::new();
    for (line, text) in logical_lines(text) {
        let fail = |why: String| Error::Dockerfile { file: file.to_path_buf(), line, why };
        let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim();
        let instruction = parse_instruction(&keyword, args).map_err(fail)?;
        let is_from = matches!(instruction, Instruction::From(_));
        match (steps.is_empty(), is_from) {
            (true, false) => {
                return Err(fail(format!(
                    "{keyword} comes before FROM; a Dockerfile starts with FROM IMAGE (or FROM scratch)"
                )));
            }
            (false, true) => {
                return Err(fail(
                    "a second FROM starts a multi-stage build, which kthw build does not support; \
                     build each stage as its own image"
                        .into(),
                ));
            }
            _ => {}
        }
        steps.push(Step { line, text, instruction });
    }
    if steps.is_empty() {
        return Err(Error::Dockerfile {
            file: file.to_path_buf(),
            line: 1,
            why: "there are no instructions; a Dockerfile starts with FROM IMAGE (or FROM scratch)".into(),
        });
    }
    Ok(Dockerfile { file: file.to_path_buf(), steps })
}

fn parse_instruction(keyword: &str, args: &str) -> std::result::Result<Instruction, String> {
    let missing = |example: &str| format!("{keyword} needs an argument, e.g. `{keyword} {example}`");
    Ok(match keyword {
        "FROM" => parse_from(args)?,
        "RUN" => Instruction::Run(parse_command(keyword, args, false, "echo hello")?),
        "CMD" => Instruction::Cmd(parse_command(keyword, args, true, "[\"sh\"]")?),
        "ENTRYPOINT" => Instruction::Entrypoint(parse_command(keyword, args, true, "[\"httpd\", \"-f\"]")?),
        "COPY" | "ADD" => {
            let copy = parse_copy(keyword, args)?;
            if keyword == "COPY" { Instruction::Copy(copy) } else { Instruction::Add(copy) }
        }
        "ENV" => Instruction::Env(parse_pairs(keyword, args)?),
        "LABEL" => Instruction::Label(parse_pairs(keyword, args)?),
        "WORKDIR" if args.is_empty() => return Err(missing("/app")),
        "WORKDIR" => Instruction::Workdir(Word::parse(args)?),
        "USER" if args.is_empty() => return Err(missing("1000:1000")),
        "USER" => Instruction::User(Word::parse(args)?),
        "EXPOSE" => {
            let words = split_words(args)?;
            if words.is_empty() {
                return Err(missing("80/tcp"));
            }
            Instruction::Expose(words.iter().map(|w| Word::parse(w)).collect::<std::result::Result<_, _>>()?)
        }
        other => {
            if let Some((_, hint)) = UNSUPPORTED.iter().find(|(k, _)| *k == other) {
                return Err(format!("{other} is a Docker instruction that kthw build does not support; {hint}"));
            }
            return Err(format!("unknown instruction {other:?}; kthw build knows {SUPPORTED}"));
        }
    })
}

fn parse_from(args: &str) -> std::result::Result<Instruction, String> {
    let words = split_words(args)?;
    match words.as_slice() {
        [] => Err("FROM needs an image, e.g. `FROM busybox` (or `FROM scratch` for an empty one)".into()),
        [flag, ..] if flag.starts_with("--") => {
            Err(format!("FROM {flag} is not supported; images here are for this machine's platform only"))
        }
        [image] => {
            if image != "scratch" {
                kthw_rootfs::store::normalize_name(image).map_err(|e| e.to_string())?;
            }
            Ok(Instruction::From(image.clone()))
        }
        [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => Err(format!(
            "`AS {name}` names a stage of a multi-stage build, which kthw build does not support; \
             remove `AS {name}`"
        )),
        _ => Err(format!("FROM takes one image name, not {}: `FROM busybox`", words.len())),
    }
}

// ANCHOR: parse_command
/// The shell or exec form of `RUN`, `CMD`, `ENTRYPOINT`. An argument that starts with `[`
/// and a quote (or is `[]`) is meant as JSON, and must be valid JSON: Docker would run a
/// broken one as a shell command instead, which is rarely what was meant.
fn parse_command(keyword: &str, args: &str, allow_empty: bool, example: &str) -> std::result::Result<Command, String> {
    if args.is_empty() {
        return Err(format!("{keyword} needs a command, e.g. `{keyword} {example}`"));
    }
    if let Some(inner) = args.strip_prefix('[') {
        let inner = inner.trim_start();
        if inner.starts_with(['"', '\'', ']']) {
            return match serde_json::from_str::<Vec<String>>(args) {
                Ok(argv) if argv.is_empty() && !allow_empty => {
                    Err(format!("{keyword} [] runs nothing; give a command, e.g. `{keyword} {example}`"))
                }
                Ok(argv) => Ok(Command::Exec(argv)),
                Err(e) => Err(format!(
                    "{keyword} looks like the exec form (a JSON array) but is not valid JSON ({e}); \
                     write it as {keyword} [\"program\", \"argument\"] with double quotes, or without the \
                     brackets for the shell form (for the shell's own `[ ... ]` test, write `test ...`)"
                )),
            };
        }
    }
    Ok(Command::Shell(args.to_string()))
}
// ANCHOR_END: parse_command

/// `ENV K=V K2="v 2"` or the older `ENV K the rest of the line` (one pair); `LABEL` alike.
fn parse_pairs(keyword: &str, args: &str) -> std::result::Result<Vec<(String, Word)>, String> {
    let words = split_words(args)?;
    let Some(first) = words.first() else {
        return Err(format!("{keyword} needs a name and a value, e.g. `{keyword} GREETING=hello`"));
    };
    let check_key = |key: &str| {
        if key.is_empty() || key.contains(['"', '\'', '$', '\\']) {
            Err(format!("{keyword} needs NAME=value, and {key:?} is not a plain name"))
        } else {
            Ok(key.to_string())
        }
    };
    if !first.contains('=') {
        // The older form: the value is the rest of the line, spaces and all.
        let key = check_key(first)?;
        let value = args[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{keyword} {key} needs a value: `{keyword} {key}=value` or `{keyword} {key} value`"));
        }
        return Ok(vec![(key, Word::parse(value)?)]);
    }
    words
        .iter()
        .map(|w| {
            let (key, value) = w
                .split_once('=')
                .ok_or_else(|| format!("{keyword}: {w:?} has no `=`; write every pair as NAME=value"))?;
            Ok((check_key(key)?, Word::parse(value)?))
        })
        .collect()
}

/// `COPY [--chown=UID:GID] [--chmod=MODE] SRC... DEST`, or the JSON form `COPY ["SRC", "DEST"]`.
fn parse_copy(keyword: &str, args: &str) -> std::result::Result<Copy, String> {
    let mut rest = args;
    let mut chown = None;
    let mut chmod = None;
    while let Some(flag_and_more) = rest.strip_prefix("--") {
        let (flag, more) = flag_and_more.split_once(char::is_whitespace).unwrap_or((flag_and_more, ""));
        rest = more.trim_start();
        let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
        match name {
            "chown" => chown = Some(parse_chown(keyword, value)?),
            "chmod" => {
                let mode = u32::from_str_radix(value, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| format!("{keyword} --chmod={value:?} is not an octal mode such as 755"))?;
                chmod = Some(mode);
            }
            "from" => {
                return Err(format!(
                    "{keyword} --from copies from another stage or image, which kthw build does not support"
                ));
            }
            other => return Err(format!("{keyword} --{other} is not supported; kthw build knows --chown and --chmod")),
        }
    }
    let words: Vec<Word> = if rest.starts_with('[') {
        let items: Vec<String> = serde_json::from_str(rest).map_err(|e| {
            format!("{keyword} [...] is not a valid JSON array of strings ({e}); write [\"src\", \"dest\"]")
        })?;
        items.iter().map(|i| Word::parse_vars(i)).collect::<std::result::Result<_, _>>()?
    } else {
        split_words(rest)?.iter().map(|w| Word::parse(w)).collect::<std::result::Result<_, _>>()?
    };
    if words.len() < 2 {
        return Err(format!(
            "{keyword} needs a source and a destination, e.g. `{keyword} index.html /app/` (SRC... DEST)"
        ));
    }
    let mut sources = words;
    let dest = sources.pop().unwrap_or_default();
    if keyword == "ADD" {
        for source in sources.iter().filter_map(Word::literal) {
            if source.contains("://") || source.starts_with("git@") {
                return Err(format!(
                    "ADD {source}: downloading is not supported (a build here has no network); download \
                     the file into the build context and COPY it"
                ));
            }
        }
    }
    Ok(Copy { sources, dest, chown, chmod })
}

fn parse_chown(keyword: &str, value: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || {
        format!(
            "{keyword} --chown={value:?}: give a numeric UID or UID:GID, e.g. --chown=1000:1000 \
             (names would need the image's /etc/passwd)"
        )
    };
    let (uid, gid) = value.split_once(':').unwrap_or((value, value));
    Ok((uid.parse().map_err(|_| bad())?, gid.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<Step> {
        parse(Path::new("Dockerfile"), text).unwrap().steps
    }

    fn parse_err(text: &str) -> String {
        parse(Path::new("Dockerfile"), text).unwrap_err().to_string()
    }

    fn env(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|s| s.to_string()).collect()
    }

    // Keywords are case-insensitive; comments and blank lines are skipped; each step
    // keeps the line it starts on.
    #[test]
    fn lines_comments_and_case() {
        let steps = parse_ok("# a comment\n\nfrom busybox\n  # indented comment\nRun echo hi\n");
        assert_eq!(steps.len(), 2);
        assert_eq!((steps[0].line, &steps[0].instruction), (3, &Instruction::From("busybox".into())));
        assert_eq!(steps[1].line, 5);
        assert_eq!(steps[1].instruction, Instruction::Run(Command::Shell("echo hi".into())));
    }

    // A `\` at the end of a line continues the instruction; comment lines inside are dropped.
    #[test]
    fn continuations_are_joined() {
        let steps = parse_ok("FROM busybox\nRUN echo one && \\\n    # explain\n    echo two \\  \n  && echo three\n");
        assert_eq!(steps[1].line, 2);
        assert_eq!(steps[1].text, "RUN echo one &&     echo two   && echo three");
    }

    // The shell form runs under /bin/sh -c; the exec form runs as it is.
    #[test]
    fn shell_and_exec_forms() {
        let steps = parse_ok("FROM busybox\nRUN echo $HOME > /x\nCMD [\"httpd\", \"-f\", \"-p\", \"80\"]\nCMD []\n");
        let Instruction::Run(run) = &steps[1].instruction else { panic!() };
        assert_eq!(run.argv(), ["/bin/sh", "-c", "echo $HOME > /x"]);
        let Instruction::Cmd(cmd) = &steps[2].instruction else { panic!() };
        assert_eq!(cmd.argv(), ["httpd", "-f", "-p", "80"]);
        assert_eq!(steps[3].instruction, Instruction::Cmd(Command::Exec(vec![])));
    }

    // The shell's `[` test command is not taken for JSON.
    #[test]
    fn shell_test_brackets_stay_shell() {
        let steps = parse_ok("FROM busybox\nRUN [ -f /etc/passwd ] && echo yes\n");
        assert_eq!(steps[1].instruction, Instruction::Run(Command::Shell("[ -f /etc/passwd ] && echo yes".into())));
    }

    // `ENV K=V K2="v 2"` sets several; `ENV K the rest` sets one, spaces kept.
    #[test]
    fn env_forms() {
        let steps = parse_ok("FROM busybox\nENV A=1 B=\"two words\" C=three\\ words\nENV D the rest  of it\n");
        let Instruction::Env(pairs) = &steps[1].instruction else { panic!() };
        let got: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.clone(), v.expand(&[]))).collect();
        assert_eq!(
            got,
            [("A".into(), "1".into()), ("B".into(), "two words".into()), ("C".into(), "three words".into())]
        );
        let Instruction::Env(pairs) = &steps[2].instruction else { panic!() };
        assert_eq!((pairs[0].0.as_str(), pairs[0].1.expand(&[]).as_str()), ("D", "the rest  of it"));
    }

    // $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alt} expand from the environment; single
    // quotes and \$ keep a dollar literal; an unset variable is empty.
    #[test]
    fn variables_expand_from_env() {
        let e = env(&["DIR=/app", "EMPTY=", "DIR=/srv"]);
        let x = |raw: &str| Word::parse(raw).unwrap().expand(&e);
        assert_eq!(x("$DIR/x"), "/srv/x");
        assert_eq!(x("${DIR}x"), "/srvx");
        assert_eq!(x("${NOPE:-/def ault}"), "/def ault");
        assert_eq!(x("${EMPTY:-${DIR}}"), "/srv");
        assert_eq!(x("${DIR:+set}-${NOPE:+set}"), "set-");
        assert_eq!(x("'$DIR'"), "$DIR");
        assert_eq!(x("\\$DIR"), "$DIR");
        assert_eq!(x("\"$DIR y\""), "/srv y");
        assert_eq!(x("$NOPE."), ".");
        assert_eq!(x("cost: $5"), "cost: $5");
        assert!(Word::parse("${DIR").unwrap_err().contains("not closed"));
        assert!(Word::parse("${DIR/a/b}").unwrap_err().contains("do not support"));
        assert!(Word::parse("\"open").unwrap_err().contains("not closed"));
    }

    // COPY takes flags, several sources and a destination, in word or JSON form.
    #[test]
    fn copy_forms() {
        let steps = parse_ok(
            "FROM busybox\nCOPY --chown=1000:50 --chmod=640 a.txt \"b c.txt\" /app/\nCOPY [\"$F\", \"/x y\"]\n",
        );
        let Instruction::Copy(c) = &steps[1].instruction else { panic!() };
        assert_eq!(c.chown, Some((1000, 50)));
        assert_eq!(c.chmod, Some(0o640));
        let sources: Vec<String> = c.sources.iter().map(|w| w.expand(&[])).collect();
        assert_eq!(sources, ["a.txt", "b c.txt"]);
        assert_eq!(c.dest.expand(&[]), "/app/");
        let Instruction::Copy(c) = &steps[2].instruction else { panic!() };
        assert_eq!(c.sources[0].expand(&env(&["F=f.txt"])), "f.txt");
        assert_eq!(c.dest.expand(&[]), "/x y");
    }

    // Errors name the file and line, what is wrong, and what to write instead.
    #[test]
    fn errors_say_where_and_how_to_fix() {
        let e = parse_err("FROM busybox\n\nFETCH http://x\n");
        assert!(e.starts_with("Dockerfile:3: unknown instruction \"FETCH\"; kthw build knows FROM"), "{e}");
        let e = parse_err("RUN echo hi\nFROM busybox\n");
        assert!(e.starts_with("Dockerfile:1: RUN comes before FROM"), "{e}");
        let e = parse_err("FROM busybox\nCMD ['sh', '-c']\n");
        assert!(e.starts_with("Dockerfile:2: CMD looks like the exec form"), "{e}");
        assert!(e.contains("double quotes"), "{e}");
        let e = parse_err("FROM busybox\nRUN\n");
        assert!(e.contains("RUN needs a command, e.g. `RUN echo hello`"), "{e}");
        let e = parse_err("FROM busybox\nCOPY onlyone\n");
        assert!(e.contains("needs a source and a destination"), "{e}");
        let e = parse_err("FROM busybox AS build\n");
        assert!(e.contains("multi-stage"), "{e}");
        let e = parse_err("FROM busybox\nFROM busybox\n");
        assert!(e.starts_with("Dockerfile:2: a second FROM"), "{e}");
        let e = parse_err("FROM busybox\nARG V=1\n");
        assert!(e.contains("ARG is a Docker instruction that kthw build does not support; use ENV"), "{e}");
        let e = parse_err("FROM busybox\nADD https://example.com/x.tgz /x\n");
        assert!(e.contains("downloading is not supported"), "{e}");
        let e = parse_err("FROM busybox\nENV A=\"open\n");
        assert!(e.contains("not closed"), "{e}");
        let e = parse_err("FROM busybox\nCOPY --chown=www a /a\n");
        assert!(e.contains("numeric UID"), "{e}");
        let e = parse_err("# only a comment\n");
        assert!(e.contains("no instructions"), "{e}");
    }
}
