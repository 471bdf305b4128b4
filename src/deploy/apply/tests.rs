//! Tests of the deploy executor against fake agents on hosts `h1` and `h2`.

use std::path::PathBuf;

use super::*;
use crate::deploy::fake::{Call, FakeAgents};
use crate::deploy::observe::NotEveryHostAnswered;

fn fixture(name: &str) -> Deployment {
    let path = format!("{}/deployment/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Deployment::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn host(name: &str) -> HostAddr {
    name.parse().unwrap()
}

fn hosts() -> Vec<HostAddr> {
    vec![host("h1"), host("h2")]
}

/// Agents on h1 and h2, and a directory for instances files.
struct Bed {
    agents: FakeAgents,
    dir: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        Bed {
            agents: FakeAgents::new(&hosts()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn out_file(&self) -> PathBuf {
        self.dir.path().join("d.instances.json")
    }

    /// Deploys `d` over h1 and h2: the outcome, and every event as a short line.
    async fn deploy(&self, d: &Deployment) -> (anyhow::Result<Outcome>, Vec<String>) {
        let mut events = Vec::new();
        let outcome = deploy(&self.agents, d, &hosts(), &self.out_file(), &mut |e| {
            events.push(line(e));
            Ok(())
        })
        .await;
        (outcome, events)
    }

    /// The instances file the last deploy wrote.
    fn instances(&self) -> Deployment {
        Deployment::parse(&std::fs::read_to_string(self.out_file()).unwrap()).unwrap()
    }

    /// The requests since the last look that change a host.
    fn changes(&self) -> Vec<Call> {
        let calls = self.agents.take_calls();
        calls.into_iter().filter(Call::changes).collect()
    }
}

fn line(e: &Event) -> String {
    let at = |host: &HostAddr, id: &ContainerId| format!("{}/{id}", host.host());
    match e {
        Event::Unchanged { id, host } => format!("{} unchanged", at(host, id)),
        Event::Installed { id, host } => format!("{} installed", at(host, id)),
        Event::Updated { id, host } => format!("{} updated", at(host, id)),
        Event::Started { id, host } => format!("{} started", at(host, id)),
        Event::Restarted { id, host } => format!("{} restarted", at(host, id)),
        Event::Deleted { id, host } => format!("{} deleted", at(host, id)),
        Event::Linked { id, host, links } => {
            let links: Vec<String> = links.iter().map(ToString::to_string).collect();
            format!("{} linked {}", at(host, id), links.join(" "))
        }
        Event::Failed {
            host,
            id,
            step,
            error,
        } => {
            let what = id
                .as_ref()
                .map_or(host.host().to_string(), |id| at(host, id));
            format!("{what} failed {step:?}: {error}")
        }
    }
}

#[tokio::test]
async fn a_fresh_deployment_is_installed_linked_and_started() {
    let bed = Bed::new();
    let (outcome, events) = bed.deploy(&fixture("simple_deploy.json")).await;
    assert_eq!(
        outcome.unwrap(),
        Outcome {
            instances: 2,
            all_done: true
        }
    );
    assert_eq!(
        events,
        [
            "h1/web-1 installed",
            "h2/web-2 installed",
            "h1/web-1 linked 127.0.0.1:8080:localhost:4000 127.0.0.1:8081:h2:4000",
            "h2/web-2 linked 127.0.0.1:8080:h1:4000 127.0.0.1:8081:localhost:4000",
            "h1/web-1 started",
            "h2/web-2 started",
        ]
    );
    let web1 = bed.agents.container(&host("h1"), "web-1").unwrap();
    assert!(web1.active);
    assert_eq!(web1.spec.image.as_str(), "openshift/busybox-http-app");
    assert_eq!(web1.spec.links.len(), 2);
    assert!(bed.agents.container(&host("h2"), "web-2").unwrap().active);

    let record = bed.instances();
    let placed: Vec<(&str, Option<&str>, u16)> = record
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.on.as_deref(), i.ports[0].external))
        .collect();
    assert_eq!(
        placed,
        [("web-1", Some("h1"), 4000), ("web-2", Some("h2"), 4000)]
    );
    let target = record.instances[1].ports[0].target.clone().unwrap();
    assert_eq!(target.port.get(), 8081);
}

#[tokio::test]
async fn a_redeploy_that_changes_nothing_sends_no_change() {
    let bed = Bed::new();
    let d = fixture("replica_set.json");
    bed.deploy(&d).await.0.unwrap();
    bed.agents.take_calls();

    let (outcome, events) = bed.deploy(&d).await;
    assert!(outcome.unwrap().all_done);
    assert_eq!(
        events,
        [
            "h1/db-1 unchanged",
            "h2/db-2 unchanged",
            "h1/db-3 unchanged"
        ]
    );
    assert_eq!(bed.changes(), []);

    // So does the instances file it wrote, fed back in.
    let (_, events) = bed.deploy(&bed.instances()).await;
    assert_eq!(events.len(), 3);
    assert!(
        events.iter().all(|e| e.ends_with("unchanged")),
        "{events:?}"
    );
    assert_eq!(bed.changes(), []);
}

#[tokio::test]
async fn a_changed_image_updates_and_restarts_running_instances_and_starts_stopped_ones() {
    let bed = Bed::new();
    let mut d = fixture("simple_deploy.json");
    bed.deploy(&d).await.0.unwrap();
    bed.agents.stop(&host("h2"), "web-2");
    bed.agents.take_calls();

    d.containers[0].image = "gear-test/httpd:2".into();
    let (outcome, events) = bed.deploy(&d).await;
    assert!(outcome.unwrap().all_done);
    assert_eq!(
        events,
        [
            "h1/web-1 updated",
            "h2/web-2 updated",
            "h1/web-1 restarted",
            "h2/web-2 started",
        ]
    );
    assert_eq!(
        bed.changes(),
        [
            Call::Install("h1/web-1".into()),
            Call::Install("h2/web-2".into()),
            Call::Restart("h1/web-1".into()),
            Call::Start("h2/web-2".into()),
        ]
    );
    let web1 = bed.agents.container(&host("h1"), "web-1").unwrap();
    assert_eq!(web1.spec.image.as_str(), "gear-test/httpd:2");
    // Its host port stayed, so its links did too.
    assert_eq!(web1.spec.links.len(), 2);
}

#[tokio::test]
async fn a_changed_environment_updates_the_instance() {
    let bed = Bed::new();
    let mut d = fixture("replica_set.json");
    bed.deploy(&d).await.0.unwrap();
    let db2 = bed.agents.container(&host("h2"), "db-2").unwrap();
    assert_eq!(db2.env.as_deref(), Some("REPLICA_SET=rs0\n"));

    d.containers[0].environment[0].value = "rs1".into();
    let (_, events) = bed.deploy(&d).await;
    assert!(
        events.contains(&"h2/db-2 updated".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"h2/db-2 restarted".to_string()),
        "{events:?}"
    );
    let db2 = bed.agents.container(&host("h2"), "db-2").unwrap();
    assert_eq!(db2.env.as_deref(), Some("REPLICA_SET=rs1\n"));
}

#[tokio::test]
async fn a_smaller_count_deletes_the_extra_instance_and_relinks_the_others() {
    let bed = Bed::new();
    let mut d = fixture("replica_set.json");
    bed.deploy(&d).await.0.unwrap();
    bed.agents.take_calls();

    d.containers[0].count = 2;
    let (outcome, events) = bed.deploy(&d).await;
    assert_eq!(
        outcome.unwrap(),
        Outcome {
            instances: 2,
            all_done: true
        }
    );
    assert_eq!(
        events,
        [
            "h1/db-1 unchanged",
            "h2/db-2 unchanged",
            "h1/db-1 linked 192.168.1.1:8080:localhost:4000 192.168.1.2:8080:h2:4000",
            "h2/db-2 linked 192.168.1.1:8080:h1:4000 192.168.1.2:8080:localhost:4000",
            "h1/db-3 deleted",
        ]
    );
    assert_eq!(
        bed.changes(),
        [
            Call::SetLinks("h1".into()),
            Call::SetLinks("h2".into()),
            Call::Delete("h1/db-3".into()),
        ]
    );
    assert_eq!(bed.agents.container(&host("h1"), "db-3"), None);
    assert!(bed.agents.container(&host("h1"), "db-1").unwrap().active);
    assert_eq!(bed.instances().instances.len(), 2);
}

#[tokio::test]
async fn a_host_that_does_not_answer_the_listing_stops_the_deploy_before_any_change() {
    let bed = Bed::new();
    let mut d = fixture("simple_deploy.json");
    bed.deploy(&d).await.0.unwrap();
    let before = std::fs::read_to_string(bed.out_file()).unwrap();
    bed.agents.take_calls();

    bed.agents.take_down(&host("h2"));
    d.containers[0].image = "gear-test/httpd:2".into();
    d.containers[0].count = 1;
    let (outcome, events) = bed.deploy(&d).await;
    let err = outcome.unwrap_err();
    let NotEveryHostAnswered(hosts) = err.downcast_ref::<NotEveryHostAnswered>().unwrap();
    assert_eq!(hosts, &["h2: cannot reach the gear agent"]);
    assert!(err.to_string().starts_with("nothing was changed"));
    assert_eq!(events, Vec::<String>::new());
    assert_eq!(
        bed.agents.take_calls(),
        [Call::List("h1".into()), Call::List("h2".into())]
    );
    let web1 = bed.agents.container(&host("h1"), "web-1").unwrap();
    assert_eq!(web1.spec.image.as_str(), "openshift/busybox-http-app");
    assert_eq!(std::fs::read_to_string(bed.out_file()).unwrap(), before);
}

#[tokio::test]
async fn a_failed_install_is_reported_and_the_other_instances_carry_on() {
    let bed = Bed::new();
    bed.agents
        .fail_install(&host("h2"), &"web-2".parse().unwrap());
    let (outcome, events) = bed.deploy(&fixture("simple_deploy.json")).await;
    assert_eq!(
        outcome.unwrap(),
        Outcome {
            instances: 2,
            all_done: false
        }
    );
    assert_eq!(
        events,
        [
            "h1/web-1 installed",
            "h2/web-2 failed Install: image openshift/busybox-http-app could not be pulled (422)",
            // web-2 has no host port, so web-1 links to itself only.
            "h1/web-1 linked 127.0.0.1:8080:localhost:4000",
            "h1/web-1 started",
        ]
    );
    assert!(bed.agents.container(&host("h1"), "web-1").unwrap().active);
    assert_eq!(bed.agents.container(&host("h2"), "web-2"), None);
    // The instances file records what exists: web-2 has no host port.
    let record = bed.instances();
    assert_eq!(record.instances[0].ports[0].external, 4000);
    assert_eq!(record.instances[1].ports[0].external, 0);
}

#[tokio::test]
async fn an_instance_that_cannot_be_read_is_left_alone() {
    let bed = Bed::new();
    let d = fixture("simple_deploy.json");
    bed.deploy(&d).await.0.unwrap();
    bed.agents.take_calls();

    bed.agents
        .fail_status(&host("h2"), &"web-2".parse().unwrap());
    let (outcome, events) = bed.deploy(&d).await;
    assert!(!outcome.unwrap().all_done);
    assert_eq!(
        events,
        [
            "h1/web-1 unchanged",
            "h2/web-2 failed Observe: container web-2 cannot be read (500)",
        ]
    );
    assert_eq!(bed.changes(), []);
}

#[tokio::test]
async fn a_failed_update_keeps_the_instance_and_the_links_to_it() {
    let bed = Bed::new();
    let mut d = fixture("simple_deploy.json");
    bed.deploy(&d).await.0.unwrap();
    bed.agents.take_calls();

    bed.agents
        .fail_install(&host("h2"), &"web-2".parse().unwrap());
    d.containers[0].image = "gear-test/httpd:2".into();
    let (outcome, events) = bed.deploy(&d).await;
    assert!(!outcome.unwrap().all_done);
    assert_eq!(
        events,
        [
            "h1/web-1 updated",
            "h2/web-2 failed Install: image gear-test/httpd:2 could not be pulled (422)",
            "h1/web-1 restarted",
        ]
    );
    let web2 = bed.agents.container(&host("h2"), "web-2").unwrap();
    assert_eq!(web2.spec.image.as_str(), "openshift/busybox-http-app");
    assert!(web2.active);
    assert_eq!(bed.instances().instances[1].ports[0].external, 4000);
}

/// Installs `id` on `host` by hand, as `gear install` would (not through a deploy).
async fn install_by_hand(bed: &Bed, host_name: &str, id: &str) {
    let req = InstallRequest::new("someone/else".parse().unwrap());
    bed.agents
        .install(&host(host_name), &id.parse().unwrap(), req)
        .await
        .unwrap();
    bed.agents.take_calls();
}

#[tokio::test]
async fn a_container_the_deployment_did_not_make_is_never_deleted() {
    let bed = Bed::new();
    let mut d = fixture("replica_set.json");
    bed.deploy(&d).await.0.unwrap();
    // db-4 has the deployment's id pattern, but a person installed it.
    install_by_hand(&bed, "h2", "db-4").await;

    d.containers[0].count = 2;
    let (outcome, events) = bed.deploy(&d).await;
    assert!(outcome.unwrap().all_done);
    assert!(
        events.contains(&"h1/db-3 deleted".to_string()),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e.contains("db-4")), "{events:?}");
    assert!(!bed.changes().contains(&Call::Delete("h2/db-4".into())));
    let db4 = bed.agents.container(&host("h2"), "db-4").unwrap();
    assert_eq!(db4.spec.image.as_str(), "someone/else");
}

#[tokio::test]
async fn an_instance_id_taken_by_a_container_it_did_not_make_stops_the_deploy() {
    let bed = Bed::new();
    install_by_hand(&bed, "h2", "web-2").await;
    let d = fixture("simple_deploy.json");
    let (outcome, events) = bed.deploy(&d).await;
    let err = outcome.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        err.downcast_ref::<observe::NotMadeHere>().is_some(),
        "{msg}"
    );
    assert!(
        msg.contains("h2/web-2 not made by this deployment"),
        "{msg}"
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(bed.changes(), []);
    assert!(!bed.out_file().exists());
    assert_eq!(
        bed.agents
            .container(&host("h2"), "web-2")
            .unwrap()
            .spec
            .image
            .as_str(),
        "someone/else"
    );
}

#[tokio::test]
async fn ownership_comes_from_the_instances_file_and_the_file_is_the_users_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let bed = Bed::new();
    let d = fixture("simple_deploy.json");
    bed.deploy(&d).await.0.unwrap();
    let mode = std::fs::metadata(bed.out_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let record = bed.instances();
    bed.agents.take_calls();

    // Without the record, its own instances are strangers: nothing is touched.
    std::fs::remove_file(bed.out_file()).unwrap();
    let err = bed.deploy(&d).await.0.unwrap_err();
    assert!(
        err.downcast_ref::<observe::NotMadeHere>().is_some(),
        "{err:#}"
    );
    assert_eq!(bed.changes(), []);

    // Deploying the record itself owns them again.
    let (outcome, _) = bed.deploy(&record).await;
    assert!(outcome.unwrap().all_done);
    assert_eq!(bed.changes(), []);
    // A record naming another host does not own the instance on this one.
    let mut moved = record.clone();
    moved.instances[0].on = Some("h9".into());
    std::fs::remove_file(bed.out_file()).unwrap();
    let err = bed.deploy(&moved).await.0.unwrap_err();
    assert!(format!("{err:#}").contains("h1/web-1"), "{err:#}");
}
