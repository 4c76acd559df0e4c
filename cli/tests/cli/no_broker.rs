//! Every client command without a broker to talk to: it fails, saying so,
//! within its 10 s bootstrap timeout.

use std::time::Duration;

use rivulet_testkit::ports::free_port;

use crate::rivulet;

#[test]
fn client_commands_fail_fast_when_no_broker_answers() {
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let commands: Vec<Vec<&str>> = vec![
        vec!["topic", "list"],
        vec!["topic", "create", "t"],
        vec!["produce", "t"],
        vec!["consume", "t", "--from", "earliest"],
        vec!["group", "list"],
        vec!["group", "describe", "g"],
        vec![
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to",
            "earliest",
        ],
        vec!["group", "delete", "g"],
    ];
    let runs: Vec<_> = commands
        .into_iter()
        .map(|c| {
            let bs = bootstrap.clone();
            std::thread::spawn(move || {
                let mut args = vec!["--bootstrap-server", bs.as_str()];
                args.extend(c.iter().copied());
                (c.join(" "), rivulet(&args, "a record\n"))
            })
        })
        .collect();
    for handle in runs {
        let (command, run) = handle.join().unwrap();
        assert!(!run.success, "{command} succeeded without a broker");
        assert!(
            run.stderr
                .contains(&format!("no broker answered at {bootstrap} within 10s")),
            "{command}: {}",
            run.stderr
        );
        assert!(
            run.took < Duration::from_secs(15),
            "{command} took {:?}",
            run.took
        );
    }
}
