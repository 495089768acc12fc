//! A real cluster from the installed binaries: what the fault suites rely on.

use aim_local_pg::{ClusterOptions, LocalCluster, ShutdownMode};

/// The nice value of a running process, from `/proc/<pid>/stat` (field 19).
fn nice_of(pid: &str) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 1..];
    after_name
        .split_whitespace()
        .nth(16)
        .expect("nice field")
        .parse()
        .expect("a number")
}

fn postmaster_pid(cluster: &LocalCluster) -> String {
    let pid_file = std::fs::read_to_string(cluster.pgdata().join("postmaster.pid")).expect("pid");
    pid_file.lines().next().expect("pid line").trim().to_owned()
}

#[tokio::test]
async fn a_niceness_is_kept_by_the_server_across_restarts() {
    let work = tempfile::tempdir().expect("tempdir");
    {
        // The server may run as another user than root: it must reach its folder.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let cluster = LocalCluster::start(&ClusterOptions {
        data_dir: work.path().join("pg"),
        tcp_port: None,
        database: "postgres".into(),
        path_var: std::env::var_os("PATH"),
        niceness: Some(7),
    })
    .await
    .expect("cluster");
    let base = nice_of("self");
    assert_eq!(nice_of(&postmaster_pid(&cluster)), (base + 7).min(19));
    cluster
        .restart(ShutdownMode::Immediate, std::time::Duration::ZERO)
        .await
        .expect("restart");
    assert_eq!(nice_of(&postmaster_pid(&cluster)), (base + 7).min(19));
    cluster.stop().await.expect("stop");
}
