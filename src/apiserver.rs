//! `kthw apiserver`: chapter 6's API server, on the store of your choice.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use kthw_apiserver::registry::Registry;
use kthw_apiserver::server::{self, Api, Config};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where objects live: sled:PATH (embedded, the default: under the state folder) or
    /// etcd:http://HOST:PORT (a real etcd)
    #[arg(long, value_name = "SPEC")]
    store: Option<String>,
    /// The address to serve on; port 0 picks a free port (printed at start)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Allow a non-loopback --listen address, although the API has no TLS and no authentication
    #[arg(long)]
    insecure_allow_remote: bool,
    /// How many revisions of history to keep for watches that resume (older: 410 Expired)
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    history: i64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store_spec = match args.store {
        Some(spec) => spec,
        None => format!("sled:{}", kthw_lab::Paths::from_env().store().display()),
    };
    let config = Config { listen: args.listen, insecure_remote: args.insecure_allow_remote, history: args.history };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = server::bind(&config).await?;
        let store = kthw_apiserver::store::open(&store_spec).await?;
        let address = listener.local_addr().context("cannot read the listening address")?;
        // Tests and scripts read this line to learn the port.
        println!("kthw apiserver: serving http://{address} (store {store_spec})");
        std::io::stdout().flush()?;
        server::serve(listener, Api::new(store, Registry::builtin()), &config).await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
