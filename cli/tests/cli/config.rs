//! `config/single.toml`: every broker setting at its default, and a broker
//! that runs from it (`rivulet --config config/single.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rivulet_broker::config::{DEFAULTS, LOG_KEYS};
use rivulet_broker::BrokerConfig;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::poll::Poll;
use rivulet_testkit::process::{BrokerProcess, NodeSpec};

use crate::{rivulet, RIVULET, TIMEOUT};

fn single_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/single.toml")
}

#[test]
fn single_toml_documents_every_setting_at_its_default() {
    let path = single_toml();
    let from_file = BrokerConfig::load(Some(&path), &[]).unwrap();
    let defaults = BrokerConfig::from_props(&BTreeMap::new()).unwrap();
    assert_eq!(from_file.node_id, defaults.node_id);
    assert_eq!(from_file.listener, defaults.listener);
    assert_eq!(from_file.advertised_listener, defaults.advertised_listener);
    assert_eq!(from_file.quorum_voters, defaults.quorum_voters);
    assert_eq!(from_file.data_dir, defaults.data_dir);
    assert_eq!(from_file.cluster_id, defaults.cluster_id);
    assert_eq!(from_file.num_partitions, defaults.num_partitions);
    assert_eq!(
        from_file.socket_request_max_bytes,
        defaults.socket_request_max_bytes
    );
    assert_eq!(from_file.session_timeout_ms, defaults.session_timeout_ms);
    assert_eq!(from_file.storage, defaults.storage);

    // Every key is written out, with the embedded default as its value.
    let text = std::fs::read_to_string(&path).unwrap();
    let keys = rivulet_broker::config::flatten_toml(&text.parse::<toml::Table>().unwrap());
    let log_defaults = &defaults.storage.log_defaults;
    let mut expected: BTreeMap<String, String> = DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (broker_key, log_key) in LOG_KEYS {
        expected.insert(broker_key.to_string(), log_defaults.get(log_key).unwrap());
    }
    assert_eq!(keys, expected);
}

#[test]
fn rivulet_without_subcommand_runs_a_broker_from_single_toml() {
    let dir = temp_dir();
    let spec = NodeSpec::new(
        RIVULET,
        dir.path().join("data"),
        dir.path().join("rivulet.log"),
    )
    .config(single_toml());
    let bootstrap = spec.bootstrap();
    let mut broker = BrokerProcess::spawn(spec);
    let mut created = None;
    Poll::new(TIMEOUT)
        .every(Duration::from_millis(200))
        .until(|| {
            broker.check_alive();
            let run = rivulet(
                &["--bootstrap-server", &bootstrap, "topic", "create", "smoke"],
                "",
            );
            let done = run.success;
            created = Some(run);
            done
        });
    let created = created.expect("one run at least");
    let listed = rivulet(&["-b", &bootstrap, "topic", "list"], "");
    drop(broker);
    assert!(created.success, "{}", created.stderr);
    assert_eq!(listed.stdout, "smoke\n");
}
