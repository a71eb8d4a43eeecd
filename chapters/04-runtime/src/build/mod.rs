//! `kthw build`: an image from a Dockerfile, one step at a time, with a cache.
//!
//! A build is a loop over the Dockerfile's instructions, each making a new image from
//! the one before:
//!
//! ```text
//! FROM busybox          busybox:latest ───────────────────── the base image
//! ENV GREETING=hello      └─▶ image 2 = same layers, config with Env   (config only)
//! COPY index.html /www/     └─▶ image 3 = + a layer of context files   (no container)
//! RUN echo built > /b         └─▶ image 4 = + the layer the command wrote
//! CMD ["httpd", "-f"]           └─▶ image 5 = config with Cmd  ── tagged -t NAME
//! ```
//!
//! - `RUN` is the only step that runs anything. It is chapter 3 and this chapter's
//!   runtime together: a rootfs of the image so far (overlay: the image's layers below,
//!   an empty upper directory on top), a bundle from [`spec::default_spec`] with the
//!   image's environment, working directory and user, and [`Runtime::run`]. When the
//!   command exits 0, the upper directory holds exactly what it changed, and becomes the
//!   new layer (chapter 3's diff, as `docker commit` does). When it fails, the build
//!   stops and names the step; nothing is committed.
//! - `COPY` and `ADD` need no container: the layer is written straight from the build
//!   context ([`copy`]).
//! - `ENV`, `WORKDIR`, `EXPOSE`, `CMD`, `ENTRYPOINT`, `LABEL` and `USER` change only the
//!   config; the image's history records an empty layer for them, as Docker's does.
//!
//! Every step's image is kept by the [`cache`]: a second build of an unchanged Dockerfile
//! prints `Using cache` for every step and ends with the same image id.
//!
//! **`RUN` has no network.** The container gets a new network namespace with only a
//! loopback interface (not even up), because wiring it to the bridge is the engine's
//! business and a build should not depend on it. Docker gives `RUN` the default bridge
//! network, so `RUN apt-get install` works there and not here: put what a build needs
//! into the context and `COPY` it.
//!
//! What Docker does differently: the classic builder ran *every* step in a container
//! (even `ENV`, with a `#(nop)` command) and committed each; BuildKit turns the whole
//! Dockerfile into a graph (LLB) first, runs independent steps in parallel, skips
//! stages nothing needs, mounts caches and secrets into `RUN`, and only exports the final
//! image. We run the steps in order, one at a time, which is what the classic builder's
//! output (`Step N/M`) shows.

pub mod cache;
pub mod copy;
pub mod dockerfile;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use kthw_lab::Paths;
use kthw_rootfs::diff::{self, INIT_FILES, TarOptions};
use kthw_rootfs::import::{self, NewLayer};
use kthw_rootfs::rootfs::Rootfs;
use kthw_rootfs::{Image, Store, digest};
use oci_spec::image::{Config, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, RootFsBuilder};

use crate::lifecycle::{CreateOptions, Runtime};
use crate::spec;
use crate::{Error, Result};
use dockerfile::{Command, Instruction, Step};

pub use cache::prune as prune_cache;

/// The `PATH` a container gets when the image sets none (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--no-cache`: run every step, even when the cache has its result.
    pub no_cache: bool,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The final image, under the name given with `-t`.
    pub image: Image,
    /// How many steps the Dockerfile has.
    pub steps: usize,
    /// How many of them were taken from the cache.
    pub cached: usize,
}

/// One build in progress.
struct Builder<'a> {
    paths: &'a Paths,
    store: &'a Store,
    context: &'a Path,
    file: PathBuf,
    options: &'a Options,
    progress: &'a mut dyn Write,
    cached: usize,
}

/// `kthw build -t TAG -f DOCKERFILE CONTEXT`: builds the Dockerfile's image and names it
/// `tag` in the store. `progress` gets what `docker build` prints: each step, its
/// `RUN` output, and the id of each step's image.
///
/// # Errors
/// [`Error::Dockerfile`] for a line that cannot be parsed or built (the file and line
/// named); [`Error::BuildStep`] for a failure of the store or the runtime in a step.
/// A failed build leaves no rootfs, mount or container behind.
pub fn build(
    paths: &Paths,
    store: &Store,
    context: &Path,
    dockerfile: &Path,
    tag: &str,
    options: &Options,
    progress: &mut dyn Write,
) -> Result<Built> {
    let tag = kthw_rootfs::store::normalize_name(tag)?;
    if !context.is_dir() {
        return Err(Error::bad(
            format!("the build context {}", context.display()),
            "is not a directory; give the folder that holds the Dockerfile and the files it copies",
        ));
    }
    let parsed = dockerfile::read(dockerfile)?;
    let mut builder = Builder { paths, store, context, file: parsed.file.clone(), options, progress, cached: 0 };
    let total = parsed.steps.len();
    let mut current: Option<Image> = None;
    let mut cmd_set = false;
    for (index, step) in parsed.steps.iter().enumerate() {
        let n = index + 1;
        builder.say(&format!("Step {n}/{total} : {}", step.text));
        let made = builder.step(n, step, current.as_ref(), &mut cmd_set);
        current = Some(made.map_err(|e| builder.in_step(step, &format!("step {n}/{total} ({})", step.text), e))?);
    }
    let last = current.ok_or_else(|| Error::bad("the Dockerfile", "has no FROM"))?;
    let manifest = store.read_blob(&last.manifest_digest)?;
    let image = store.create_image(&tag, &manifest)?;
    builder.say(&format!("Successfully built {}", digest::short(&image.id())));
    builder.say(&format!("Successfully tagged {tag}"));
    Ok(Built { image, steps: total, cached: builder.cached })
}

impl Builder<'_> {
    /// Prints a line of progress. A reader that went away does not stop the build.
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.progress, "{line}");
    }

    /// A reason a step cannot be done, at the step's line.
    fn fail(&self, step: &Step, why: impl std::fmt::Display) -> Error {
        Error::Dockerfile { file: self.file.clone(), line: step.line, why: why.to_string() }
    }

    /// An error of a step, naming the step (`step 3/7 (RUN ...)`) and its line.
    fn in_step(&self, step: &Step, label: &str, e: Error) -> Error {
        match e {
            Error::Dockerfile { file, line, why } => Error::Dockerfile { file, line, why: format!("{label}: {why}") },
            e => Error::BuildStep { file: self.file.clone(), line: step.line, step: label.into(), cause: Box::new(e) },
        }
    }

    /// The image of a step with this key, from the cache (and says so), unless `--no-cache`.
    fn cached(&mut self, key: &str) -> Option<Image> {
        if self.options.no_cache {
            return None;
        }
        let hit = cache::lookup(self.store, key)?;
        self.say(" ---> Using cache");
        self.say(&format!(" ---> {}", digest::short(&hit.id())));
        self.cached += 1;
        Some(hit)
    }

    /// Step `n`: the image it makes from `parent` (the image of the step before).
    fn step(&mut self, n: usize, step: &Step, parent: Option<&Image>, cmd_set: &mut bool) -> Result<Image> {
        let parent = match (&step.instruction, parent) {
            (Instruction::From(name), _) => {
                let image = if name == "scratch" { scratch(self.store)? } else { self.store.image(name)? };
                self.say(&format!(" ---> {}", digest::short(&image.id())));
                return Ok(image);
            }
            (_, Some(parent)) => parent,
            (_, None) => return Err(self.fail(step, "an instruction before FROM")),
        };
        let config = parent.config.config().clone().unwrap_or_default();
        match &step.instruction {
            Instruction::Run(command) => self.run(n, step, parent, &config, command),
            Instruction::Copy(c) => self.copy(step, parent, &config, "COPY", c),
            Instruction::Add(c) => self.copy(step, parent, &config, "ADD", c),
            other => {
                let mut new = config.clone();
                let text = apply_config(other, &mut new, cmd_set).map_err(|why| self.fail(step, why))?;
                let key = cache::key(&parent.id(), &text, None);
                if let Some(hit) = self.cached(&key) {
                    return Ok(hit);
                }
                let mut image_config = parent.config.clone();
                image_config.set_config(Some(new));
                self.commit(parent, image_config, None, &format!("/bin/sh -c #(nop) {text}"), &key)
            }
        }
    }

    // ANCHOR: run_step
    /// `RUN`: the command in a container of the image so far; its changes become a layer.
    fn run(&mut self, n: usize, step: &Step, parent: &Image, config: &Config, command: &Command) -> Result<Image> {
        let argv = command.argv();
        let text = format!("RUN {}", serde_json::to_string(&argv).unwrap_or_default());
        let key = cache::key(&parent.id(), &text, None);
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let id = container_id(n);
        let bundle = self.paths.run.join("build").join(&id);
        let mut rootfs = Rootfs::create(self.paths, self.store, &parent.name, &id, Some(&id), vec![])?;
        let layer = self.run_in(&mut rootfs, &bundle, &id, step, config, &argv);
        // Whatever happened: no mount, no rootfs (nor its hold on the image), no bundle,
        // and no container state or cgroup if the runtime failed half-way.
        if layer.is_err() {
            let _ = Runtime::for_paths(self.paths).delete(&id, true);
        }
        let unmounted = rootfs.unmount();
        let removed = rootfs.remove(self.store);
        let _ = fs::remove_dir_all(&bundle);
        let layer = layer?;
        unmounted?;
        removed?;
        self.commit(parent, parent.config.clone(), Some(layer), &argv.join(" "), &key)
    }

    fn run_in(
        &mut self,
        rootfs: &mut Rootfs,
        bundle: &Path,
        id: &str,
        step: &Step,
        config: &Config,
        argv: &[String],
    ) -> Result<NewLayer> {
        let root = bundle.join("rootfs");
        rootfs.mount(self.store, &root)?;
        let workdir = config.working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
        make_workdir(&root, &workdir).map_err(|why| self.fail(step, why))?;
        let user = resolve_user(&root, config.user().as_deref()).map_err(|why| self.fail(step, why))?;
        let spec = run_spec(argv, config, id, user)?;
        let config_json = bundle.join("config.json");
        spec.save(&config_json).map_err(|e| Error::bad(config_json.display().to_string(), e))?;

        self.say(&format!(" ---> Running in {id}"));
        let code = self.run_container(id, bundle)?;
        if code != 0 {
            return Err(self.fail(
                step,
                format!("the command '{}' returned a non-zero code: {code}; nothing was committed", argv.join(" ")),
            ));
        }
        self.say(&format!("Removing intermediate container {id}"));
        rootfs.unmount()?;
        // The upper directory is what the command changed, whiteouts and all; the init
        // layer's files (/etc/hosts, ...) belong to the container, not to the image.
        let options = TarOptions { overlay_whiteouts: true, exclude: INIT_FILES.iter().map(PathBuf::from).collect() };
        let upper = rootfs.upper();
        Ok(import::store_layer(self.store, |w| diff::write_tar(&upper, w, &options).map(|_| ()))?)
    }
    // ANCHOR_END: run_step

    /// Runs the bundle with our runtime, its stdout and stderr copied into the progress
    /// output, stdin `/dev/null` (a build is not interactive). The runtime waits for the
    /// container in a thread of ours, so that this thread can copy the output meanwhile.
    fn run_container(&mut self, id: &str, bundle: &Path) -> Result<i32> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
        let write2 = write.try_clone().map_err(Error::io("dup", "the output pipe"))?;
        let null: OwnedFd = File::open("/dev/null").map_err(Error::io("open", "/dev/null"))?.into();
        let opts = CreateOptions { stdio: [Some(null), Some(write), Some(write2)], ..Default::default() };
        let runtime = Runtime::for_paths(self.paths);
        let progress = &mut *self.progress;
        std::thread::scope(|scope| {
            let waiter = scope.spawn(move || runtime.run(id, bundle, opts));
            // Until every copy of the write end is closed: when the container is gone.
            let mut reader = File::from(read);
            let mut buf = [0u8; 8192];
            let mut last = b'\n';
            while let Ok(k @ 1..) = reader.read(&mut buf) {
                let _ = progress.write_all(&buf[..k]);
                last = buf[k - 1];
            }
            if last != b'\n' {
                let _ = progress.write_all(b"\n");
            }
            waiter.join().unwrap_or_else(|_| Err(Error::bad("the runtime", "its thread panicked")))
        })
    }

    /// `COPY`/`ADD`: a layer of context files, planned, hashed for the cache, written.
    fn copy(
        &mut self,
        step: &Step,
        parent: &Image,
        config: &Config,
        keyword: &str,
        c: &dockerfile::Copy,
    ) -> Result<Image> {
        let env = config.env().clone().unwrap_or_default();
        let workdir = config.working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
        let request = copy::Request {
            keyword,
            sources: c.sources.iter().map(|w| w.expand(&env)).collect(),
            dest: c.dest.expand(&env),
            workdir: &workdir,
            chown: c.chown,
            chmod: c.chmod,
        };
        let layers = self.store.layer_dirs(parent)?.into_iter().rev().collect();
        let plan = copy::plan(self.context, &request, &copy::ImageFs { layers }).map_err(|why| self.fail(step, why))?;
        let files = plan.digest().map_err(|why| self.fail(step, why))?;
        let text = format!(
            "{keyword} {}",
            serde_json::json!({ "sources": request.sources, "dest": request.dest, "workdir": workdir,
                                "chown": c.chown, "chmod": c.chmod })
        );
        let key = cache::key(&parent.id(), &text, Some(&files));
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let layer = import::store_layer(self.store, |w| plan.write_tar(w))?;
        let dest = format!("/{}", copy::image_path(&workdir, &request.dest).display());
        let created_by = format!("/bin/sh -c #(nop) {keyword} files:{} in {dest}", digest::short(&files));
        self.commit(parent, parent.config.clone(), Some(layer), &created_by, &key)
    }

    /// Writes the image of a step under its cache name: the parent's layers plus
    /// `layer`, `config`, and a history entry (an empty layer for config steps).
    fn commit(
        &mut self,
        parent: &Image,
        mut config: ImageConfiguration,
        layer: Option<NewLayer>,
        created_by: &str,
        key: &str,
    ) -> Result<Image> {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        config.set_created(Some(now.clone()));
        let mut entry = HistoryBuilder::default().created(now).created_by(created_by);
        if layer.is_none() {
            entry = entry.empty_layer(true);
        }
        let mut history = config.history().clone().unwrap_or_default();
        history.push(entry.build().map_err(|e| Error::bad("the image history", e))?);
        config.set_history(Some(history));
        let layers: Vec<NewLayer> = layer.into_iter().collect();
        let image =
            import::write_image(self.store, &cache::name(key), config, parent.manifest.layers().clone(), layers, None)?;
        self.say(&format!(" ---> {}", digest::short(&image.id())));
        Ok(image)
    }
}

/// A name for a `RUN` container (also its rootfs and hostname), unique on this machine.
fn container_id(step: usize) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("build-{}-{}-{step}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `FROM scratch`: an image with no layers and an empty config. It has no timestamp,
/// so it is the same image, with the same id, every time.
fn scratch(store: &Store) -> Result<Image> {
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(Vec::<String>::new())
        .build()
        .map_err(|e| Error::bad("the scratch image", e))?;
    let config = ImageConfigurationBuilder::default()
        .architecture(import::host_arch())
        .os("linux")
        .config(Config::default())
        .rootfs(rootfs)
        .build()
        .map_err(|e| Error::bad("the scratch image", e))?;
    Ok(import::write_image(store, &format!("{}:scratch", cache::PREFIX), config, vec![], vec![], None)?)
}

/// What a config-only instruction does to the image config, and the instruction's text
/// after variable expansion (part of the cache key). `cmd_set` says whether this
/// Dockerfile set `CMD` already: Docker's rule is that `ENTRYPOINT` drops a `CMD`
/// *inherited* from the base image (it was meant for another program), not one the
/// same Dockerfile wrote before it.
///
/// # Errors
/// A value that makes no sense after expansion (an `EXPOSE` that is not a port).
pub fn apply_config(
    instruction: &Instruction,
    config: &mut Config,
    cmd_set: &mut bool,
) -> std::result::Result<String, String> {
    let env = config.env().clone().unwrap_or_default();
    let argv = |c: &Command| -> Option<Vec<String>> { Some(c.argv()).filter(|a| !a.is_empty()) };
    let json = |v: &Option<Vec<String>>| serde_json::to_string(&v.clone().unwrap_or_default()).unwrap_or_default();
    Ok(match instruction {
        Instruction::Env(pairs) => {
            // Every value is expanded with the environment from before this line, as in Docker.
            let values: Vec<(String, String)> = pairs.iter().map(|(k, w)| (k.clone(), w.expand(&env))).collect();
            let mut new = env.clone();
            for (k, v) in &values {
                let entry = format!("{k}={v}");
                match new.iter_mut().find(|e| e.split_once('=').is_some_and(|(key, _)| key == k)) {
                    Some(existing) => *existing = entry,
                    None => new.push(entry),
                }
            }
            config.set_env(Some(new));
            let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("ENV {}", shown.join(" "))
        }
        Instruction::Label(pairs) => {
            let mut labels = config.labels().clone().unwrap_or_default();
            let mut shown = Vec::new();
            for (k, w) in pairs {
                let v = w.expand(&env);
                shown.push(format!("{k}={v:?}"));
                labels.insert(k.clone(), v);
            }
            config.set_labels(Some(labels));
            format!("LABEL {}", shown.join(" "))
        }
        Instruction::Workdir(word) => {
            let old = config.working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
            let dir = format!("/{}", copy::image_path(&old, &word.expand(&env)).display());
            config.set_working_dir(Some(dir.clone()));
            format!("WORKDIR {dir}")
        }
        Instruction::User(word) => {
            let user = word.expand(&env);
            config.set_user(Some(user.clone()));
            format!("USER {user}")
        }
        Instruction::Expose(words) => {
            let mut ports = config.exposed_ports().clone().unwrap_or_default();
            let mut shown = Vec::new();
            for w in words {
                let port = parse_port(&w.expand(&env))?;
                shown.push(port.clone());
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            ports.sort();
            config.set_exposed_ports(Some(ports));
            format!("EXPOSE {}", shown.join(" "))
        }
        Instruction::Cmd(command) => {
            config.set_cmd(argv(command));
            *cmd_set = true;
            format!("CMD {}", json(config.cmd()))
        }
        Instruction::Entrypoint(command) => {
            config.set_entrypoint(argv(command));
            if !*cmd_set {
                config.set_cmd(None);
            }
            format!("ENTRYPOINT {} (CMD {})", json(config.entrypoint()), json(config.cmd()))
        }
        Instruction::From(_) | Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) => {
            return Err("is not a config instruction".into());
        }
    })
}

/// `80`, `80/tcp`, `53/udp` → `80/tcp`, `53/udp`.
fn parse_port(text: &str) -> std::result::Result<String, String> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let ok = port.parse::<u16>().is_ok_and(|p| p > 0) && ["tcp", "udp", "sctp"].contains(&proto.as_str());
    if ok {
        Ok(format!("{port}/{proto}"))
    } else {
        Err(format!("EXPOSE {text:?} is not a port; write a number from 1 to 65535, optionally with /tcp or /udp"))
    }
}

/// The OCI spec of a `RUN` container: the runtime's defaults (namespaces including a new,
/// empty network namespace; Docker's capabilities), with the image's environment, working
/// directory and user, and a writable root, since its changes are the point.
///
/// # Errors
/// An empty command.
pub fn run_spec(argv: &[String], config: &Config, hostname: &str, user: (u32, u32)) -> Result<oci_spec::runtime::Spec> {
    let mut spec = spec::default_spec(argv)?;
    let mut env = config.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let cwd = config.working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
    if let Some(process) = spec.process_mut() {
        process.set_env(Some(env));
        process.set_cwd(cwd.into());
        process.user_mut().set_uid(user.0);
        process.user_mut().set_gid(user.1);
    }
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(false));
    }
    spec.set_hostname(Some(hostname.to_string()));
    Ok(spec)
}

/// Creates the working directory in the mounted rootfs if it is missing (Docker creates
/// it too), so that it lands in the step's layer. A symbolic link on the way is left
/// to the runtime, which resolves it inside the container: followed here, on the host,
/// an absolute link would lead out of the rootfs.
fn make_workdir(root: &Path, workdir: &str) -> std::result::Result<(), String> {
    let mut at = root.to_path_buf();
    for component in copy::image_path("/", workdir).components() {
        at.push(component);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => return Ok(()),
            Ok(_) => {
                return Err(format!(
                    "WORKDIR {workdir}: {} is a file in the image",
                    component.as_os_str().to_string_lossy()
                ));
            }
            Err(_) => fs::create_dir(&at).map_err(|e| format!("WORKDIR {workdir}: cannot create it: {e}"))?,
        }
    }
    Ok(())
}

/// The uid and gid of the image's `USER` (`name`, `uid`, `name:group`, `uid:gid`), names
/// looked up in the rootfs's `/etc/passwd` and `/etc/group`. No user means root.
fn resolve_user(root: &Path, user: Option<&str>) -> std::result::Result<(u32, u32), String> {
    let Some(user) = user.filter(|u| !u.is_empty()) else { return Ok((0, 0)) };
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    // Fields of the line whose first field (or third, the id) matches.
    let lookup = |file: &str, key: &str| -> Option<Vec<String>> {
        let etc = root.join("etc");
        let path = etc.join(file);
        let is_link = |p: &Path| fs::symlink_metadata(p).map_or(true, |m| m.file_type().is_symlink());
        if is_link(&etc) || is_link(&path) {
            return None; // a link would be followed on the host
        }
        let text = fs::read_to_string(path).ok()?;
        text.lines()
            .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
            .find(|f| f.len() > 3 && (f[0] == key || f[2] == key))
    };
    let passwd = lookup("passwd", name);
    let uid = match name.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => passwd.as_ref().and_then(|f| f[2].parse().ok()).ok_or_else(|| {
            format!("USER {name}: no such user in the image's /etc/passwd; give a numeric uid or add the user")
        })?,
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup("group", g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("USER {user}: no group {g} in the image's /etc/group; give a numeric gid"))?,
        },
        None => passwd.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockerfile::Word;

    fn config(env: &[&str]) -> Config {
        let mut c = Config::default();
        c.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
        c.set_cmd(Some(vec!["/bin/sh".into()]));
        c
    }

    fn steps(text: &str) -> Vec<Instruction> {
        dockerfile::parse(Path::new("Dockerfile"), text).unwrap().steps.into_iter().map(|s| s.instruction).collect()
    }

    // ENV values see the environment from before the line; a later ENV replaces a value in place.
    #[test]
    fn env_expands_with_the_previous_environment() {
        let mut c = config(&["PATH=/bin", "A=old"]);
        let mut cmd_set = false;
        let text = apply_config(&steps("FROM x\nENV A=new B=$A")[1], &mut c, &mut cmd_set).unwrap();
        assert_eq!(text, "ENV A=\"new\" B=\"old\"");
        assert_eq!(c.env().as_deref().unwrap(), ["PATH=/bin", "A=new", "B=old"]);
    }

    // WORKDIR is relative to the previous one and uses the environment.
    #[test]
    fn workdir_is_relative_to_the_last() {
        let mut c = config(&["APP=web"]);
        let mut cmd_set = false;
        for i in &steps("FROM x\nWORKDIR /srv\nWORKDIR $APP\nWORKDIR ../data/./x")[1..] {
            apply_config(i, &mut c, &mut cmd_set).unwrap();
        }
        assert_eq!(c.working_dir().as_deref(), Some("/srv/data/x"));
    }

    // ENTRYPOINT drops the CMD the base image had, but keeps one this Dockerfile set.
    #[test]
    fn entrypoint_resets_an_inherited_cmd() {
        let mut c = config(&[]);
        let mut cmd_set = false;
        apply_config(&steps("FROM x\nENTRYPOINT [\"httpd\"]")[1], &mut c, &mut cmd_set).unwrap();
        assert_eq!(c.cmd(), &None);
        let mut c = config(&[]);
        let mut cmd_set = false;
        for i in &steps("FROM x\nCMD [\"-f\"]\nENTRYPOINT [\"httpd\"]")[1..] {
            apply_config(i, &mut c, &mut cmd_set).unwrap();
        }
        assert_eq!(c.cmd().as_deref().unwrap(), ["-f"]);
    }

    // An ENTRYPOINT in shell form ignores CMD: the container runs `sh -c SCRIPT CMD...`,
    // where the CMD words become $0, $1, ... that the script does not use.
    #[test]
    fn shell_entrypoint_ignores_cmd() {
        let mut c = config(&[]);
        let mut cmd_set = false;
        for i in &steps("FROM x\nCMD [\"ignored\"]\nENTRYPOINT echo entry")[1..] {
            apply_config(i, &mut c, &mut cmd_set).unwrap();
        }
        let mut argv = c.entrypoint().clone().unwrap();
        argv.extend(c.cmd().clone().unwrap_or_default());
        assert_eq!(argv, ["/bin/sh", "-c", "echo entry", "ignored"]);
    }

    // EXPOSE takes ports with an optional protocol, tcp by default, and refuses the rest.
    #[test]
    fn expose_ports() {
        let mut c = config(&["P=8080"]);
        let mut cmd_set = false;
        apply_config(&steps("FROM x\nEXPOSE 80 $P/tcp 53/udp")[1], &mut c, &mut cmd_set).unwrap();
        assert_eq!(c.exposed_ports().as_deref().unwrap(), ["53/udp", "80/tcp", "8080/tcp"]);
        let err = apply_config(&Instruction::Expose(vec![Word::parse("http").unwrap()]), &mut c, &mut cmd_set);
        assert!(err.unwrap_err().contains("is not a port"));
    }

    // A RUN container gets the image's env, workdir and user, a writable root, and a new
    // network namespace of its own (no path to join: only lo, no network).
    #[test]
    fn run_spec_has_image_settings_and_no_network() {
        let mut c = config(&["GREETING=hi"]);
        c.set_working_dir(Some("/app".into()));
        let spec = run_spec(&["/bin/sh".into(), "-c".into(), "true".into()], &c, "build-1", (1000, 1000)).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.env().as_deref().unwrap(), [DEFAULT_PATH, "GREETING=hi"]);
        assert_eq!(process.cwd(), Path::new("/app"));
        assert_eq!((process.user().uid(), process.user().gid()), (1000, 1000));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        let net = namespaces.iter().find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network).unwrap();
        assert!(net.path().is_none(), "a new network namespace, not the host's");
    }

    // USER names are looked up in the image's /etc/passwd and /etc/group.
    #[test]
    fn users_resolve_in_the_image() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home:/bin/sh\n")
            .unwrap();
        fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_user(dir.path(), None), Ok((0, 0)));
        assert_eq!(resolve_user(dir.path(), Some("web")), Ok((1000, 1001)));
        assert_eq!(resolve_user(dir.path(), Some("web:staff")), Ok((1000, 50)));
        assert_eq!(resolve_user(dir.path(), Some("42:7")), Ok((42, 7)));
        assert!(resolve_user(dir.path(), Some("nobody")).unwrap_err().contains("no such user"));
    }
}
