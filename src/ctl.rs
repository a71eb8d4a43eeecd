//! `kthw ctl`: chapter 6's small kubectl, to show how a client lists and watches.

use std::process::ExitCode;

use anyhow::Context as _;
use kthw_apiserver::client::{self, Change, Client, Kubeconfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API server URL; default: the current context of $KUBECONFIG or ~/.kube/config
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// The namespace; default: the context's, else `default`
    #[arg(short, long, global = true, value_name = "NS")]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List objects as a table (or print one), like kubectl get
    Get {
        /// pods, po, pod, nodes, namespaces, ...
        resource: String,
        name: Option<String>,
        /// All namespaces
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output: wide, json or yaml (default: a table)
        #[arg(short, long)]
        output: Option<String>,
        /// Only objects whose labels match, e.g. app=web
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Create or update the objects of a YAML file (server-side apply)
    Apply {
        #[arg(short, long, value_name = "FILE")]
        filename: std::path::PathBuf,
    },
    /// Delete an object
    Delete { resource: String, name: String },
    /// Show an object in full
    Describe { resource: String, name: String },
    /// List, then print every change as it happens (list + watch, resumed and relisted)
    Watch {
        resource: String,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.server {
        Some(server) => Kubeconfig { server: server.clone(), namespace: "default".into() },
        None => Kubeconfig::load()?,
    };
    let namespace = args.namespace.clone().unwrap_or(config.namespace.clone());
    let client = Client::new(&config.server);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        match args.command {
            Command::Get { resource, name, all_namespaces, output, selector } => {
                let resource = client.resolve(&resource).await?;
                let ns = (!all_namespaces).then_some(namespace.as_str());
                let mut path = resource.collection(ns);
                if let Some(name) = &name {
                    path = format!("{path}/{name}");
                }
                if let Some(selector) = &selector {
                    path = format!("{path}?labelSelector={selector}");
                }
                match output.as_deref() {
                    Some("json") => println!("{}", serde_json::to_string_pretty(&client.get(&path).await?)?),
                    Some("yaml") => print!("{}", client::describe(&client.get(&path).await?)),
                    other => {
                        let table = client.table(&path).await?;
                        let namespaced = resource.namespaced && all_namespaces;
                        print!("{}", client::render_table(&table, other == Some("wide"), namespaced));
                    }
                }
            }
            Command::Apply { filename } => {
                let text = std::fs::read_to_string(&filename)
                    .with_context(|| format!("cannot read {}", filename.display()))?;
                for object in client::parse_manifests(&text)? {
                    let (applied, resource) = client.apply(&object, &namespace).await?;
                    let name = applied["metadata"]["name"].as_str().unwrap_or_default();
                    println!("{}/{name} applied", resource.kind.to_lowercase());
                }
            }
            Command::Delete { resource, name } => {
                let resource = client.resolve(&resource).await?;
                let path = format!("{}/{name}", resource.collection(Some(&namespace)));
                client.call(client::Method::DELETE, &path, "", None).await?;
                println!("{}/{name} deleted", resource.kind.to_lowercase());
            }
            Command::Describe { resource, name } => {
                let resource = client.resolve(&resource).await?;
                let object = client.get(&format!("{}/{name}", resource.collection(Some(&namespace)))).await?;
                print!("{}", client::describe(&object));
            }
            Command::Watch { resource, all_namespaces } => {
                let resource = client.resolve(&resource).await?;
                let ns = (!all_namespaces).then_some(namespace.as_str());
                client
                    .list_and_watch(&resource.collection(ns), |change| match change {
                        Change::Listed(items) => println!("LISTED {} objects", items.len()),
                        Change::Event(kind, object) => {
                            let name = object["metadata"]["name"].as_str().unwrap_or_default();
                            let rv = object["metadata"]["resourceVersion"].as_str().unwrap_or_default();
                            println!("{kind:<8} {name} (resourceVersion {rv})");
                        }
                    })
                    .await?;
            }
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
