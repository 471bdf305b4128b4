//! [`Systemd`] over D-Bus: `org.freedesktop.systemd1.Manager` through zbus_systemd's proxy.
//!
//! The connection survives a restart of the bus itself ([`reconnect`](super::reconnect)):
//! a broken connection is replaced on the next call, and idempotent calls are retried once.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use zbus::OwnedObjectPath;
use zbus_systemd::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};

use super::reconnect::{Reconnecting, Retry};
use super::{Action, JobResult, Property, Systemd, UnitDetails, UnitInfo, UnitState};

/// How long a job may go without a word from the bus before gear checks whether it still
/// exists: a signal lost while the bus was restarting must not leave a request hanging.
const JOB_CHECK: Duration = Duration::from_secs(5);

/// The system bus, connected on first use and shared by every call to PID 1.
///
/// Connecting lazily keeps the agent answering (with a clear error) while the bus is
/// down, and lets it retry on the next request. zbus reads `DBUS_SYSTEM_BUS_ADDRESS`, so a
/// test can point it at another bus.
#[derive(Debug, Default)]
pub struct Dbus {
    conn: Reconnecting<zbus::Connection>,
}

/// A new connection to the system bus, subscribed to systemd's signals.
async fn connect() -> anyhow::Result<zbus::Connection> {
    let conn = zbus::Connection::system()
        .await
        .context("connecting to the system D-Bus (is systemd running, and are we root?)")?;
    // systemd emits JobRemoved only while some client is subscribed; a subscription ends
    // with the connection, so every new connection subscribes again.
    ManagerProxy::new(&conn)
        .await?
        .subscribe()
        .await
        .context("subscribing to systemd signals")?;
    Ok(conn)
}

async fn manager(conn: &zbus::Connection) -> anyhow::Result<ManagerProxy<'static>> {
    ManagerProxy::new(conn)
        .await
        .context("creating the systemd manager proxy")
}

impl Dbus {
    /// A handle that connects on first use.
    pub fn new() -> Dbus {
        Dbus::default()
    }
}

impl Systemd for Dbus {
    async fn list_units(&self, pattern: &str) -> anyhow::Result<Vec<UnitInfo>> {
        let units = self
            .conn
            .call(connect, Retry::Once, |conn| async move {
                manager(&conn)
                    .await?
                    .list_units_by_patterns(vec![], vec![pattern.to_string()])
                    .await
                    .with_context(|| format!("listing systemd units matching {pattern}"))
            })
            .await?;
        Ok(units
            .into_iter()
            .map(
                |(
                    name,
                    _desc,
                    load,
                    active,
                    sub,
                    _following,
                    _path,
                    _job_id,
                    job_type,
                    _job_path,
                )| {
                    UnitInfo {
                        name,
                        load_state: load,
                        active_state: active,
                        sub_state: sub,
                        job_type: Some(job_type).filter(|t| !t.is_empty()),
                    }
                },
            )
            .collect())
    }

    async fn unit_state(&self, name: &str) -> anyhow::Result<UnitState> {
        self.conn
            .call(connect, Retry::Once, |conn| async move {
                let path = load_unit(&conn, name).await?;
                state_at(&conn, name, path).await
            })
            .await
    }

    async fn loaded_state(&self, name: &str) -> anyhow::Result<Option<UnitState>> {
        self.conn
            .call(connect, Retry::Once, |conn| async move {
                match manager(&conn).await?.get_unit(name.to_string()).await {
                    Ok(path) => Ok(Some(state_at(&conn, name, path).await?)),
                    Err(zbus::Error::MethodError(err, _, _))
                        if err.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e).with_context(|| format!("asking systemd for unit {name}")),
                }
            })
            .await
    }

    async fn unit_details(&self, name: &str) -> anyhow::Result<UnitDetails> {
        self.conn
            .call(connect, Retry::Once, |conn| async move {
                let path = load_unit(&conn, name).await?;
                let unit = UnitProxy::builder(&conn)
                    .path(path.clone())
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await?;
                let service = ServiceProxy::builder(&conn)
                    .path(path)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await?;
                // Each property is optional: a unit systemd has just unloaded answers some
                // of them with errors, and `gear status` shows what there is.
                Ok(UnitDetails {
                    since_usec: unit.state_change_timestamp().await.ok().filter(|&t| t > 0),
                    main_pid: service.main_pid().await.ok().filter(|&p| p > 0),
                    // u64::MAX is systemd's "not accounted".
                    memory_bytes: service
                        .memory_current()
                        .await
                        .ok()
                        .filter(|&m| m != u64::MAX),
                    result: service.result().await.ok(),
                })
            })
            .await
    }

    async fn run_job(&self, action: Action, name: &str) -> anyhow::Result<JobResult> {
        // A start or stop asked twice is one job (the second finds the unit where it is
        // going); a restart asked twice restarts twice, so it is not repeated.
        let retry = match action {
            Action::Start | Action::Stop => Retry::Once,
            Action::Restart => Retry::Never,
        };
        let (conn, job, mut removed) = self
            .conn
            .call(connect, retry, |conn| async move {
                let manager = manager(&conn).await?;
                // Listen before queueing the job, or a fast job's JobRemoved could be missed.
                let removed = manager
                    .receive_job_removed()
                    .await
                    .context("subscribing to systemd job signals")?;
                let (unit, mode) = (name.to_string(), "replace".to_string());
                let job = match action {
                    Action::Start => manager.start_unit(unit, mode).await,
                    Action::Stop => manager.stop_unit(unit, mode).await,
                    Action::Restart => manager.restart_unit(unit, mode).await,
                }
                .with_context(|| format!("asking systemd to {action:?} {name}").to_lowercase())?;
                Ok((conn, job, removed))
            })
            .await?;
        let mut listening_on = conn;
        loop {
            let next = tokio::time::timeout(JOB_CHECK, removed.next()).await;
            if let Ok(Some(signal)) = next {
                let args = signal.args().context("reading a JobRemoved signal")?;
                if *args.job() == job {
                    return Ok(match args.result().as_str() {
                        "done" => JobResult::Done,
                        other => JobResult::Other(other.to_string()),
                    });
                }
                continue;
            }
            // The stream ended (the bus went away) or was quiet for a while: listen on a
            // live connection again, then ask whether the job is still queued. PID 1 keeps
            // its jobs across a bus restart, so their path stays valid.
            if next.is_ok() || listening_on.is_closed() {
                (listening_on, removed) = self
                    .conn
                    .call(connect, Retry::Once, |conn| async move {
                        let removed = manager(&conn).await?.receive_job_removed().await?;
                        Ok((conn, removed))
                    })
                    .await
                    .with_context(|| format!("listening again for the job of {name}"))?;
            }
            if !self.job_queued(&job).await? {
                log::info!("the {action:?} job of {name} ended unseen; reading the unit's state");
                return self.unseen_job_result(action, name).await;
            }
        }
    }

    async fn reset_failed(&self, name: &str) -> anyhow::Result<()> {
        self.conn
            .call(connect, Retry::Once, |conn| async move {
                match manager(&conn)
                    .await?
                    .reset_failed_unit(name.to_string())
                    .await
                {
                    // systemd unloads an inactive unit nothing refers to: nothing to reset.
                    Err(zbus::Error::MethodError(err, _, _))
                        if err.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
                    {
                        Ok(())
                    }
                    other => other.with_context(|| format!("resetting the failed state of {name}")),
                }
            })
            .await
    }

    async fn reload(&self) -> anyhow::Result<()> {
        // A second daemon-reload reads the same files again: harmless.
        self.conn
            .call(connect, Retry::Once, |conn| async move {
                manager(&conn)
                    .await?
                    .reload()
                    .await
                    .context("reloading systemd (daemon-reload)")
            })
            .await
    }

    async fn start_transient(
        &self,
        name: &str,
        properties: &[Property],
    ) -> anyhow::Result<JobResult> {
        use zbus::{OwnedVariant, Variant};
        let props = properties
            .iter()
            .map(|p| {
                let (key, value) = match p {
                    Property::Str(k, v) => (k, Variant::from(v.clone())),
                    Property::Bool(k, v) => (k, Variant::from(*v)),
                    Property::U64(k, v) => (k, Variant::from(*v)),
                    // a(sasb): path, argv, ignore failure.
                    Property::Exec(k, argv, ignore) => {
                        let path = argv.first().cloned().unwrap_or_default();
                        (k, Variant::from(vec![(path, argv.clone(), *ignore)]))
                    }
                };
                Ok((key.to_string(), OwnedVariant::try_from(value)?))
            })
            .collect::<zbus::Result<Vec<_>>>()
            .context("encoding transient unit properties")?;
        // Never asked twice: a second start of the same transient unit would fail on its
        // name, or run the job twice.
        let (job, mut removed) = self
            .conn
            .call(connect, Retry::Never, |conn| {
                let props = props.clone();
                async move {
                    let manager = manager(&conn).await?;
                    // Listen before starting, or a fast job's JobRemoved could be missed.
                    let removed = manager
                        .receive_job_removed()
                        .await
                        .context("subscribing to systemd job signals")?;
                    let job = manager
                        .start_transient_unit(name.to_string(), "fail".to_string(), props, vec![])
                        .await
                        .with_context(|| {
                            format!("asking systemd to start transient unit {name}")
                        })?;
                    Ok((job, removed))
                }
            })
            .await?;
        while let Some(signal) = removed.next().await {
            let args = signal.args().context("reading a JobRemoved signal")?;
            if *args.job() == job {
                return Ok(match args.result().as_str() {
                    "done" => JobResult::Done,
                    other => JobResult::Other(other.to_string()),
                });
            }
        }
        anyhow::bail!("the system bus closed while waiting for the start of {name}")
    }

    async fn enable(&self, name: &str) -> anyhow::Result<()> {
        // Not runtime-only (it must last across reboots), and never forced over a link an
        // administrator made. Enabling twice makes the same links: harmless to repeat.
        self.conn
            .call(connect, Retry::Once, |conn| async move {
                manager(&conn)
                    .await?
                    .enable_unit_files(vec![name.to_string()], false, false)
                    .await
                    .map(drop)
                    .with_context(|| format!("enabling {name}"))
            })
            .await
    }
}

impl Dbus {
    /// Whether PID 1 still has job `job` queued or running.
    async fn job_queued(&self, job: &OwnedObjectPath) -> anyhow::Result<bool> {
        self.conn
            .call(connect, Retry::Once, |conn| async move {
                let jobs = manager(&conn)
                    .await?
                    .list_jobs()
                    .await
                    .context("listing systemd jobs")?;
                Ok(jobs.iter().any(|(_, _, _, _, path, _)| path == job))
            })
            .await
    }

    /// How a job whose JobRemoved gear missed most likely ended, from where its unit is now.
    async fn unseen_job_result(&self, action: Action, name: &str) -> anyhow::Result<JobResult> {
        let state = self.unit_state(name).await?;
        Ok(job_result_from_state(action, &state.active_state))
    }
}

/// A job's result read from the state its unit reached, for a job gear did not see end.
fn job_result_from_state(action: Action, active_state: &str) -> JobResult {
    let reached = match action {
        Action::Start | Action::Restart => active_state == "active",
        Action::Stop => matches!(active_state, "inactive" | "failed"),
    };
    if reached {
        JobResult::Done
    } else {
        JobResult::Other(format!(
            "unknown (the system bus broke while the job ran; the unit is {active_state})"
        ))
    }
}

async fn load_unit(conn: &zbus::Connection, name: &str) -> anyhow::Result<OwnedObjectPath> {
    manager(conn)
        .await?
        .load_unit(name.to_string())
        .await
        .with_context(|| format!("loading unit {name}"))
}

/// The state of the unit at `path`, its four properties asked at once.
async fn state_at(
    conn: &zbus::Connection,
    name: &str,
    path: OwnedObjectPath,
) -> anyhow::Result<UnitState> {
    // Uncached: a stale ActiveState is worse than one more D-Bus round trip.
    let unit = UnitProxy::builder(conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .with_context(|| format!("creating a proxy for {name}"))?;
    let (load_state, active_state, sub_state, need_daemon_reload) = tokio::try_join!(
        unit.load_state(),
        unit.active_state(),
        unit.sub_state(),
        unit.need_daemon_reload()
    )
    .with_context(|| format!("reading the state of {name}"))?;
    Ok(UnitState {
        load_state,
        active_state,
        sub_state,
        need_daemon_reload,
    })
}

#[cfg(test)]
mod tests {
    use super::super::reconnect::is_disconnect;
    use super::*;

    #[test]
    fn an_unseen_job_is_judged_by_the_state_its_unit_reached() {
        assert_eq!(
            job_result_from_state(Action::Start, "active"),
            JobResult::Done
        );
        assert_eq!(
            job_result_from_state(Action::Restart, "active"),
            JobResult::Done
        );
        assert_eq!(
            job_result_from_state(Action::Stop, "inactive"),
            JobResult::Done
        );
        assert_eq!(
            job_result_from_state(Action::Stop, "failed"),
            JobResult::Done
        );
        assert!(matches!(
            job_result_from_state(Action::Start, "failed"),
            JobResult::Other(s) if s.contains("the unit is failed")
        ));
    }

    #[test]
    fn a_broken_pipe_from_zbus_is_a_disconnect() {
        let err = zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe,
        )));
        assert!(is_disconnect(
            &anyhow::Error::new(err).context("listing jobs")
        ));
    }
}
