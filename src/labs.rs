//! Every chapter's lab, registered in chapter order. Each chapter crate builds its own
//! lab (its checks reuse the chapter's code); this list is the only wiring.

use kthw_lab::lab::Lab;

pub fn all() -> Vec<Lab> {
    vec![
        kthw_lab::lab00::lab(),
        kthw_namespaces::lab::lab(),
        kthw_cgroups::lab::lab(),
        kthw_rootfs::lab::lab(),
        kthw_runtime::lab::lab(),
        kthw_pods::lab::lab(),
        kthw_apiserver::lab::lab(),
        // One line per chapter, in order, e.g. `kthw_namespaces::lab::lab(),`
    ]
}
