//! Container ids and names.
//!
//! An id is 32 random bytes from `/dev/urandom` as 64 hex digits; `ps` shows the first
//! 12, and every command accepts a unique prefix. A name is given with `--name` or made
//! up as `adjective_surname`, as Docker does (`brave_turing`), so people can type it.
//!
//! What Docker does differently: its list (moby's `pkg/namesgenerator`) has about a
//! hundred adjectives and two hundred and fifty scientists and hackers, and it never
//! makes `boring_wozniak`; after a collision it appends a digit, as we do.

use std::io::Read;

use crate::{Error, Result};

const ADJECTIVES: [&str; 32] = [
    "admiring",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "bold",
    "brave",
    "busy",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "ecstatic",
    "elegant",
    "festive",
    "focused",
    "gallant",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "vibrant",
    "zealous",
];

const SURNAMES: [&str; 32] = [
    "allen", "babbage", "bell", "bose", "curie", "darwin", "dijkstra", "einstein", "euler", "fermat", "feynman",
    "gauss", "hamilton", "hopper", "hypatia", "kepler", "knuth", "lamport", "liskov", "lovelace", "meitner", "noether",
    "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wilson", "wing", "wozniak", "yalow",
];

/// `n` random bytes from the kernel.
///
/// # Errors
/// If `/dev/urandom` cannot be read (a broken system).
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::io("read", "/dev/urandom"))?;
    Ok(bytes)
}

/// A new container id: 64 hex digits.
///
/// # Errors
/// As [`random_bytes`].
pub fn new_id() -> Result<String> {
    Ok(hex::encode(random_bytes(32)?))
}

/// A name made of an adjective and a surname picked by `seed`.
pub fn name_from(seed: u16) -> String {
    let adjective = ADJECTIVES[usize::from(seed) % ADJECTIVES.len()];
    let surname = SURNAMES[usize::from(seed >> 8) % SURNAMES.len()];
    format!("{adjective}_{surname}")
}

/// A random name that `taken` does not refuse: `brave_turing`, then with a digit
/// appended after ten collisions.
///
/// # Errors
/// As [`random_bytes`].
pub fn random_name(taken: impl Fn(&str) -> bool) -> Result<String> {
    for attempt in 0..100 {
        let b = random_bytes(3)?;
        let mut name = name_from(u16::from_le_bytes([b[0], b[1]]));
        if attempt >= 10 {
            name.push_str(&(b[2] % 10).to_string());
        }
        if !taken(&name) {
            return Ok(name);
        }
    }
    Err(Error::bad("a container name", "every name tried is taken; give one with --name"))
}

/// Checks a `--name`: Docker's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, and not 64 hex
/// digits (which would look like another container's id).
///
/// # Errors
/// A clear error saying what a name may hold.
pub fn check_name(name: &str) -> Result<()> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !first_ok || !rest_ok || name.len() > 63 {
        return Err(Error::bad(
            format!("--name {name:?}"),
            "a name is 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // An id is 64 lower-case hex digits, and two ids differ.
    #[test]
    fn ids_are_64_hex_digits() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    // A made-up name is adjective_surname and a valid --name; a taken name is not reused.
    #[test]
    fn names_are_adjective_surname() {
        assert_eq!(name_from(0), "admiring_allen");
        assert_eq!(name_from(0x1b06), "brave_turing");
        let name = random_name(|_| false).unwrap();
        let (adjective, surname) = name.split_once('_').unwrap();
        assert!(ADJECTIVES.contains(&adjective) && SURNAMES.contains(&surname), "{name}");
        check_name(&name).unwrap();
        let other = random_name(|n| n == name).unwrap();
        assert_ne!(other, name);
    }

    // Bad names are refused with the rule.
    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(64)] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("letters, digits"), "{bad}: {err}");
        }
        check_name("web-1.prod_a").unwrap();
    }
}
