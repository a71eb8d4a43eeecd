//! `kthw-cni-bridge`: our CNI plugin's binary. Install it in a CNI bin dir as
//! `kthw-bridge` (its `type`); all the work is in `kthw_pods::cni::bridge`.
//!
//! The CNI contract is the whole interface: the operation and the container in `CNI_*`
//! environment variables, the network config on stdin, the result (or an error
//! `{"code": ..., "msg": ...}`) as JSON on stdout, exit status 0 or 1.

use std::io::Read;

fn main() {
    let mut stdin = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut stdin) {
        println!(r#"{{"cniVersion":"1.0.0","code":5,"msg":"cannot read the config from stdin: {e}"}}"#);
        std::process::exit(1);
    }
    let env = |name: &str| std::env::var(name).ok();
    match kthw_pods::cni::bridge::run(&env, &stdin) {
        Ok(Some(output)) => println!("{output}"),
        Ok(None) => {}
        Err(error) => {
            println!("{}", serde_json::to_string(&error).unwrap_or_default());
            std::process::exit(1);
        }
    }
}
