//! `COPY` and `ADD`: files of the build context become a layer, without a container.
//!
//! A step is planned first: every entry the layer will hold, by its path in the image,
//! with its type, mode, owner and content. The plan is what the cache hashes (paths,
//! modes, owners and contents; not modification times, as Docker does not either) and
//! what is then written as the layer's tar. Docker's rules for the destination:
//!
//! - a relative destination is relative to `WORKDIR`;
//! - a *file* copied to `dest/` (trailing slash), or to a directory that exists in the
//!   image, lands in it under its own name; otherwise `dest` is the new file's name;
//! - a *directory* source copies its **contents** into `dest`, not the directory itself;
//! - with several sources (or a wildcard), `dest` must end with `/`;
//! - missing parent directories are created, root-owned, mode 755; parents that exist
//!   in the image are written into the layer with the image's mode and owner, so that
//!   overlayfs (where the topmost copy of a directory wins) does not change them;
//! - copied files belong to root (or `--chown`), keep their mode (or `--chmod`);
//! - `ADD` of a local tar archive (plain or gzip, recognised by content, not by name)
//!   unpacks it into `dest`.
//!
//! A source must stay inside the build context: `../x` is refused, and so is a
//! symbolic link in the context that points outside it (the classic way to leak
//! `/etc/shadow` into an image). Links *inside* a copied directory are copied as links,
//! never followed.
//!
//! What Docker does differently: the classic builder copied into the container's
//! mounted rootfs; BuildKit's `llb.Copy` runs in its snapshotter (`fsutil`), hashes the
//! files with their metadata into a content checksum, honours `.dockerignore`, follows
//! symlinks in destination paths inside the rootfs, and unpacks bzip2 and xz archives too.
//! We refuse a destination through a symlink instead, and read `ADD` archives into memory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

use kthw_rootfs::layer::{self, OVERLAY_OPAQUE_XATTR};

/// What a layer entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Dir,
    /// A regular file of the context, read when the tar is written.
    File(PathBuf),
    /// A file from an `ADD`ed archive, kept in memory.
    Data(Vec<u8>),
    Symlink(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    content: Content,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

/// The image so far, as the stack of its unpacked layers, to look up what exists.
pub struct ImageFs {
    /// Layer directories, top first.
    pub layers: Vec<PathBuf>,
}

impl ImageFs {
    /// What the image has at `rel` (no leading `/`): the topmost layer that has it wins;
    /// a whiteout, or an opaque directory above it, hides it.
    fn stat(&self, rel: &Path) -> Option<fs::Metadata> {
        for layer in &self.layers {
            if let Ok(meta) = fs::symlink_metadata(layer.join(rel)) {
                return if layer::is_whiteout(&meta) { None } else { Some(meta) };
            }
            for ancestor in rel.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
                let at = layer.join(ancestor);
                let hides = match fs::symlink_metadata(&at) {
                    Ok(m) if layer::is_whiteout(&m) => true,
                    Ok(m) if m.is_dir() => {
                        layer::get_xattr(&at, OVERLAY_OPAQUE_XATTR).ok().flatten().as_deref() == Some(b"y")
                    }
                    _ => false,
                };
                if hides {
                    return None;
                }
            }
        }
        None
    }
}

/// What a `COPY` or `ADD` step asks for, after variable expansion.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `COPY` or `ADD`, for messages; `ADD` also unpacks archives.
    pub keyword: &'a str,
    pub sources: Vec<String>,
    pub dest: String,
    /// The image's `WORKDIR` (absolute), or `/`.
    pub workdir: &'a str,
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<u32>,
}

/// Every entry of the layer to be, by path in the image (no leading `/`), sorted so that
/// a directory comes before what is in it.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    entries: BTreeMap<PathBuf, Entry>,
}

/// Plans the layer of a `COPY`/`ADD` step: which context files go where.
///
/// # Errors
/// A source outside the context (`../x`, or a symlink pointing out), a missing source,
/// several sources into a destination without a trailing `/`, a destination through a
/// file or symlink of the image; each said with the fix.
pub fn plan(context: &Path, request: &Request<'_>, image: &ImageFs) -> Result<Plan, String> {
    let context = fs::canonicalize(context).map_err(|e| format!("the build context {}: {e}", context.display()))?;
    let mut sources = Vec::new();
    for given in &request.sources {
        sources.extend(resolve_source(&context, given)?);
    }
    let into_dir = is_dir_hint(&request.dest);
    if sources.len() > 1 && !into_dir {
        return Err(format!(
            "when {} has more than one source, the destination must be a directory and end with a /: \
             write {}/",
            request.keyword, request.dest
        ));
    }
    let dest = image_path(request.workdir, &request.dest);
    let dest_is_dir = into_dir || image.stat(&dest).is_some_and(|m| m.is_dir());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (uid, gid) = request.chown.unwrap_or((0, 0));
    let mut plan = Plan::default();
    let new_dir = |mtime| Entry { content: Content::Dir, mode: request.chmod.unwrap_or(0o755), uid, gid, mtime };
    for (name, path) in sources {
        let meta = fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            if !dest.as_os_str().is_empty() && image.stat(&dest).is_none_or(|m| !m.is_dir()) {
                plan.entries.insert(dest.clone(), new_dir(now));
            }
            plan.add_tree(&path, &dest, request)?;
        } else if request.keyword == "ADD" && is_archive(&path) {
            plan.add_archive(&path, &dest, request)?;
        } else {
            let target = if dest_is_dir { dest.join(&name) } else { dest.clone() };
            if target.as_os_str().is_empty() {
                return Err(format!("{} cannot write a file over the root directory /", request.keyword));
            }
            plan.insert_file(target, &path, &meta, request);
        }
    }
    plan.add_parents(image, now)?;
    Ok(plan)
}

/// A trailing `/` (or `.`) says "into this directory".
fn is_dir_hint(dest: &str) -> bool {
    dest.ends_with('/') || dest == "." || dest.ends_with("/.") || dest == ".." || dest.ends_with("/..")
}

/// `dest` as a clean path in the image, relative to `/`: joined to the working
/// directory when relative, `..` resolved without climbing above `/`.
pub fn image_path(workdir: &str, dest: &str) -> PathBuf {
    let joined = if dest.starts_with('/') { PathBuf::from(dest) } else { Path::new(workdir).join(dest) };
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

// ANCHOR: resolve_source
/// The host files a source names: `(name in the image, path on the host)`. The name is
/// the last component as written, or the matching file's for a wildcard.
fn resolve_source(context: &Path, given: &str) -> Result<Vec<(PathBuf, PathBuf)>, String> {
    let outside = || {
        format!(
            "{given} is outside the build context {}; COPY and ADD can only read files under it: \
             move the file into the context, or build from a folder that contains it",
            context.display()
        )
    };
    // Lexically first: `a/../../x` climbs out even if `a` does not exist.
    let mut rel = PathBuf::new();
    for component in Path::new(given).components() {
        match component {
            Component::Normal(c) => rel.push(c),
            Component::ParentDir if !rel.pop() => return Err(outside()),
            _ => {} // `/x` means the context's x, as in Docker
        }
    }
    let (parent, last) = match rel.file_name().map(|n| n.to_string_lossy().into_owned()) {
        Some(last) if last.contains(['*', '?']) => (rel.parent().unwrap_or(Path::new("")).to_path_buf(), Some(last)),
        _ => (rel.clone(), None),
    };
    if parent.to_string_lossy().contains(['*', '?', '[']) {
        return Err(format!("{given}: wildcards are supported in the last part of a path only"));
    }
    let candidates: Vec<PathBuf> = match &last {
        None => vec![rel.clone()],
        Some(pattern) => {
            let dir = context.join(&parent);
            let mut names: Vec<String> = fs::read_dir(&dir)
                .map_err(|e| format!("{given}: {}: {e}", dir.display()))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| wildcard_match(pattern, n))
                .collect();
            names.sort();
            if names.is_empty() {
                return Err(format!("{given} matches no file in the build context {}", context.display()));
            }
            names.into_iter().map(|n| parent.join(n)).collect()
        }
    };
    let mut out = Vec::new();
    for rel in candidates {
        let host = context.join(&rel);
        // Then for real: a symbolic link may point anywhere on the host.
        let real = fs::canonicalize(&host).map_err(|_| {
            if fs::symlink_metadata(&host).is_ok() {
                format!("{given} is a symbolic link to a file that does not exist")
            } else {
                format!("{given}: no such file or directory in the build context {}", context.display())
            }
        })?;
        if !real.starts_with(context) {
            return Err(format!(
                "{given} is a symbolic link to {}, outside the build context {}; copy the file itself \
                 into the context",
                real.display(),
                context.display()
            ));
        }
        let name = rel.file_name().map(PathBuf::from).unwrap_or_default();
        out.push((name, real));
    }
    Ok(out)
}
// ANCHOR_END: resolve_source

/// `*` matches any run of characters, `?` one character (as in the shell, in one path part).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Whether a file is a tar archive, plain or gzip: `ustar` at byte 257 of the tar.
fn is_archive(path: &Path) -> bool {
    let Ok(mut reader) = layer::open_layer(path) else { return false };
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n >= 262 && &head[257..262] == b"ustar"
}

impl Plan {
    fn insert_file(&mut self, target: PathBuf, host: &Path, meta: &fs::Metadata, request: &Request<'_>) {
        let (uid, gid) = request.chown.unwrap_or((0, 0));
        let mode = request.chmod.unwrap_or(meta.mode() & 0o7777);
        let entry = Entry { content: Content::File(host.to_path_buf()), mode, uid, gid, mtime: meta.mtime() as u64 };
        self.entries.insert(target, entry);
    }

    /// The contents of the host directory `dir` under `dest`; links are kept as links.
    fn add_tree(&mut self, dir: &Path, dest: &Path, request: &Request<'_>) -> Result<(), String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        let (uid, gid) = request.chown.unwrap_or((0, 0));
        for name in names {
            let host = dir.join(&name);
            let target = dest.join(&name);
            let meta = fs::symlink_metadata(&host).map_err(|e| format!("{}: {e}", host.display()))?;
            let mtime = meta.mtime() as u64;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let to = fs::read_link(&host).map_err(|e| format!("{}: {e}", host.display()))?;
                self.entries.insert(target, Entry { content: Content::Symlink(to), mode: 0o777, uid, gid, mtime });
            } else if ft.is_dir() {
                let mode = request.chmod.unwrap_or(meta.mode() & 0o7777);
                self.entries.insert(target.clone(), Entry { content: Content::Dir, mode, uid, gid, mtime });
                self.add_tree(&host, &target, request)?;
            } else if ft.is_file() {
                self.insert_file(target, &host, &meta, request);
            } else {
                tracing::warn!(
                    "{} leaves out {}: sockets, fifos and devices are not image content",
                    request.keyword,
                    host.display()
                );
            }
        }
        Ok(())
    }

    /// `ADD archive.tar.gz /dest`: the archive's entries under `dest`.
    fn add_archive(&mut self, path: &Path, dest: &Path, request: &Request<'_>) -> Result<(), String> {
        let bad = |e: io::Error| format!("ADD {}: {e}", path.display());
        let mut archive = tar::Archive::new(layer::open_layer(path).map_err(|e| e.to_string())?);
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.into_owned();
            let mut rel = PathBuf::new();
            for component in raw.components() {
                match component {
                    Component::Normal(c) => rel.push(c),
                    Component::ParentDir => {
                        return Err(format!("ADD {}: entry {} climbs out with `..`", path.display(), raw.display()));
                    }
                    _ => {}
                }
            }
            if rel.as_os_str().is_empty() {
                continue;
            }
            let h = entry.header();
            let (uid, gid) = request.chown.unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
            let mode = request.chmod.unwrap_or(h.mode().unwrap_or(0o644) & 0o7777);
            let mtime = h.mtime().unwrap_or(0);
            let content = match h.entry_type() {
                tar::EntryType::Directory => Content::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).map_err(bad)?;
                    Content::Data(data)
                }
                tar::EntryType::Symlink => {
                    Content::Symlink(entry.link_name().map_err(bad)?.unwrap_or_default().into_owned())
                }
                tar::EntryType::Link => {
                    // A hard link: a copy of the file it names, which came earlier.
                    let to = entry.link_name().map_err(bad)?.unwrap_or_default().into_owned();
                    match self.entries.get(&dest.join(&to)) {
                        Some(Entry { content: c @ Content::Data(_), .. }) => c.clone(),
                        _ => {
                            return Err(format!(
                                "ADD {}: hard link {} to a file not in the archive",
                                path.display(),
                                raw.display()
                            ));
                        }
                    }
                }
                other => {
                    tracing::warn!(
                        "ADD {} leaves out {} ({other:?}): not image content",
                        path.display(),
                        raw.display()
                    );
                    continue;
                }
            };
            self.entries.insert(dest.join(rel), Entry { content, mode, uid, gid, mtime });
        }
        Ok(())
    }

    /// Adds the parent directories of every entry: as the image has them, or new.
    fn add_parents(&mut self, image: &ImageFs, now: u64) -> Result<(), String> {
        let mut parents = BTreeMap::new();
        for path in self.entries.keys() {
            for ancestor in path.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
                if self.entries.contains_key(ancestor) || parents.contains_key(ancestor) {
                    continue;
                }
                let entry = match image.stat(ancestor) {
                    Some(m) if m.is_dir() => Entry {
                        content: Content::Dir,
                        mode: m.mode() & 0o7777,
                        uid: m.uid(),
                        gid: m.gid(),
                        mtime: m.mtime() as u64,
                    },
                    Some(m) if m.file_type().is_symlink() => {
                        return Err(format!(
                            "/{} is a symbolic link in the image; copy to the directory it points to instead",
                            ancestor.display()
                        ));
                    }
                    Some(_) => return Err(format!("/{} is a file in the image, not a directory", ancestor.display())),
                    None => Entry { content: Content::Dir, mode: 0o755, uid: 0, gid: 0, mtime: now },
                };
                parents.insert(ancestor.to_path_buf(), entry);
            }
        }
        self.entries.extend(parents);
        Ok(())
    }

    /// How many entries the layer will have.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the layer will be empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The paths of the entries, `/`-rooted, in layer order (for tests and messages).
    pub fn paths(&self) -> Vec<String> {
        self.entries.keys().map(|p| format!("/{}", p.display())).collect()
    }

    /// The digest of what the layer will hold: each entry's path, type, mode, owner and
    /// content, in order. Modification times are left out, so `touch` alone does not
    /// invalidate the cache; any change of content does.
    ///
    /// # Errors
    /// If a context file cannot be read.
    pub fn digest(&self) -> Result<String, String> {
        let mut hasher = Sha256::new();
        for (path, e) in &self.entries {
            let kind = match &e.content {
                Content::Dir => "dir",
                Content::File(_) | Content::Data(_) => "file",
                Content::Symlink(_) => "symlink",
            };
            hasher.update(format!("{}\0{kind} {:o} {}:{}\0", path.display(), e.mode, e.uid, e.gid));
            match &e.content {
                Content::Dir => {}
                Content::File(host) => {
                    let mut file = File::open(host).map_err(|e| format!("{}: {e}", host.display()))?;
                    io::copy(&mut file, &mut hasher).map_err(|e| format!("{}: {e}", host.display()))?;
                }
                Content::Data(data) => hasher.update(data),
                Content::Symlink(to) => hasher.update(to.as_os_str().as_encoded_bytes()),
            }
            hasher.update(b"\0");
        }
        Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// Writes the layer's tar.
    ///
    /// # Errors
    /// If a context file cannot be read or the tar cannot be written.
    pub fn write_tar(&self, out: &mut dyn Write) -> kthw_rootfs::Result<()> {
        use kthw_rootfs::Error;
        let mut tar = tar::Builder::new(out);
        for (path, e) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(e.mode);
            header.set_uid(u64::from(e.uid));
            header.set_gid(u64::from(e.gid));
            header.set_mtime(e.mtime);
            let written = match &e.content {
                Content::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    tar.append_data(&mut header, path, io::empty())
                }
                Content::File(host) => {
                    let file = File::open(host).map_err(Error::io("open", host))?;
                    let size = file.metadata().map_err(Error::io("stat", host))?.len();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(size);
                    tar.append_data(&mut header, path, file.take(size))
                }
                Content::Data(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, &data[..])
                }
                Content::Symlink(to) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, path, to)
                }
            };
            written.map_err(Error::io("write the layer entry", path))?;
        }
        tar.finish().map_err(Error::io("write", "the layer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn request<'a>(sources: &[&str], dest: &str, workdir: &'a str) -> Request<'a> {
        Request {
            keyword: "COPY",
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            workdir,
            chown: None,
            chmod: None,
        }
    }

    /// A context with `a.txt`, `site/index.html`, `site/css/x.css`, and an image with
    /// `/app` (mode 700) and `/etc`.
    fn fixture() -> (tempfile::TempDir, PathBuf, ImageFs) {
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path().join("ctx");
        fs::create_dir_all(context.join("site/css")).unwrap();
        fs::write(context.join("a.txt"), "a\n").unwrap();
        fs::write(context.join("site/index.html"), "<h1>hi</h1>\n").unwrap();
        fs::write(context.join("site/css/x.css"), "x\n").unwrap();
        let layer = dir.path().join("layer");
        fs::create_dir_all(layer.join("app")).unwrap();
        fs::create_dir_all(layer.join("etc")).unwrap();
        fs::set_permissions(layer.join("app"), fs::Permissions::from_mode(0o700)).unwrap();
        let image = ImageFs { layers: vec![layer] };
        (dir, context, image)
    }

    // A file to `dest/` or to an existing directory keeps its name; otherwise dest names it.
    #[test]
    fn file_destinations_follow_docker() {
        let (_d, ctx, image) = fixture();
        let p = |src: &[&str], dest: &str, wd: &str| plan(&ctx, &request(src, dest, wd), &image).unwrap().paths();
        assert_eq!(p(&["a.txt"], "/new/", "/"), ["/new", "/new/a.txt"]);
        assert_eq!(p(&["a.txt"], "/app", "/"), ["/app", "/app/a.txt"]);
        assert_eq!(p(&["a.txt"], "/b.txt", "/"), ["/b.txt"]);
        assert_eq!(p(&["a.txt"], ".", "/app"), ["/app", "/app/a.txt"]);
        assert_eq!(p(&["a.txt"], "x/y.txt", "/app"), ["/app", "/app/x", "/app/x/y.txt"]);
    }

    // A directory source copies its contents, not itself; parents keep the image's mode.
    #[test]
    fn directory_contents_are_copied() {
        let (_d, ctx, image) = fixture();
        let plan = plan(&ctx, &request(&["site"], "/app/", "/"), &image).unwrap();
        assert_eq!(plan.paths(), ["/app", "/app/css", "/app/css/x.css", "/app/index.html"]);
        assert_eq!(plan.entries[Path::new("app")].mode, 0o700, "the image's /app keeps its mode");
    }

    // Several sources need a destination ending in /; wildcards match in the last part.
    #[test]
    fn several_sources_need_a_directory() {
        let (_d, ctx, image) = fixture();
        let err = plan(&ctx, &request(&["a.txt", "site/index.html"], "/srv", "/"), &image).unwrap_err();
        assert!(err.contains("must be a directory and end with a /"), "{err}");
        let got = plan(&ctx, &request(&["site/*.html", "a.*"], "/srv/", "/"), &image).unwrap().paths();
        assert_eq!(got, ["/srv", "/srv/a.txt", "/srv/index.html"]);
    }

    // Sources outside the context are refused: by `..`, and by a symlink pointing out.
    #[test]
    fn sources_stay_in_the_context() {
        let (d, ctx, image) = fixture();
        fs::write(d.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret"), ctx.join("link")).unwrap();
        std::os::unix::fs::symlink("a.txt", ctx.join("inside")).unwrap();
        for bad in ["../secret", "site/../../secret", "link"] {
            let err = plan(&ctx, &request(&[bad], "/x", "/"), &image).unwrap_err();
            assert!(err.contains("outside the build context"), "{bad}: {err}");
        }
        assert_eq!(plan(&ctx, &request(&["inside"], "/x", "/"), &image).unwrap().paths(), ["/x"]);
        let err = plan(&ctx, &request(&["nope"], "/x", "/"), &image).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
    }

    // The digest changes with a file's content or mode, not with its modification time.
    #[test]
    fn digest_covers_content_and_mode() {
        let (_d, ctx, image) = fixture();
        let digest = || plan(&ctx, &request(&["site"], "/app/", "/"), &image).unwrap().digest().unwrap();
        let first = digest();
        let file = ctx.join("site/index.html");
        let t = fs::metadata(&file).unwrap().modified().unwrap();
        File::options().write(true).open(&file).unwrap().set_modified(t + std::time::Duration::from_secs(60)).unwrap();
        assert_eq!(digest(), first, "a new mtime alone keeps the cache");
        fs::write(&file, "<h1>changed</h1>\n").unwrap();
        let changed = digest();
        assert_ne!(changed, first);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(digest(), changed);
    }

    // ADD unpacks a local tar archive (gzip too) into the destination; COPY copies it.
    #[test]
    fn add_unpacks_archives() {
        let (d, ctx, image) = fixture();
        let archive = ctx.join("files.tgz");
        let gz = flate2::write::GzEncoder::new(File::create(&archive).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all("pkg", ctx.join("site")).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let mut add = request(&["files.tgz"], "/opt/", "/");
        add.keyword = "ADD";
        let got = plan(&ctx, &add, &image).unwrap().paths();
        assert_eq!(got, ["/opt", "/opt/pkg", "/opt/pkg/css", "/opt/pkg/css/x.css", "/opt/pkg/index.html"]);
        let copied = plan(&ctx, &request(&["files.tgz"], "/opt/", "/"), &image).unwrap().paths();
        assert_eq!(copied, ["/opt", "/opt/files.tgz"]);
        drop(d);
    }

    // The layer's tar holds what the plan says, with root as owner.
    #[test]
    fn tar_matches_the_plan() {
        let (_d, ctx, image) = fixture();
        let plan = plan(&ctx, &request(&["a.txt"], "/new/", "/"), &image).unwrap();
        let mut bytes = Vec::new();
        plan.write_tar(&mut bytes).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().uid().unwrap())
            })
            .collect();
        assert_eq!(names, [("new".to_string(), 0), ("new/a.txt".to_string(), 0)]);
    }

    // Relative destinations join the working directory; `..` cannot climb above /.
    #[test]
    fn image_paths_are_clean() {
        assert_eq!(image_path("/app", "x/../y"), Path::new("app/y"));
        assert_eq!(image_path("/app", "/abs"), Path::new("abs"));
        assert_eq!(image_path("/", "../../etc"), Path::new("etc"));
        assert!(wildcard_match("*.txt", "a.txt") && !wildcard_match("*.txt", "a.html") && wildcard_match("a?c", "abc"));
    }
}
