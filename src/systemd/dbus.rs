//! [`Systemd`] over D-Bus: `org.freedesktop.systemd1.Manager` through zbus_systemd's proxy.

use anyhow::Context as _;
use futures_util::StreamExt as _;
use tokio::sync::OnceCell;
use zbus_systemd::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};

use super::{Action, JobResult, Property, Systemd, UnitDetails, UnitInfo, UnitState};

/// The system bus, connected on first use and shared by every call to PID 1.
///
/// Connecting lazily keeps the agent answering (with a clear error) while the bus is
/// down, and lets it retry on the next request. zbus reads `DBUS_SYSTEM_BUS_ADDRESS`, so a
/// test can point it at another bus.
#[derive(Debug, Default)]
pub struct Dbus {
    conn: OnceCell<zbus::Connection>,
}

impl Dbus {
    /// A handle that connects on first use.
    pub fn new() -> Dbus {
        Dbus::default()
    }

    async fn conn(&self) -> anyhow::Result<&zbus::Connection> {
        self.conn
            .get_or_try_init(|| async {
                let conn = zbus::Connection::system().await.context(
                    "connecting to the system D-Bus (is systemd running, and are we root?)",
                )?;
                // systemd emits JobRemoved only while some client is subscribed.
                ManagerProxy::new(&conn)
                    .await?
                    .subscribe()
                    .await
                    .context("subscribing to systemd signals")?;
                anyhow::Ok(conn)
            })
            .await
    }

    async fn manager(&self) -> anyhow::Result<ManagerProxy<'static>> {
        ManagerProxy::new(self.conn().await?)
            .await
            .context("creating the systemd manager proxy")
    }
}

impl Systemd for Dbus {
    async fn list_units(&self, pattern: &str) -> anyhow::Result<Vec<UnitInfo>> {
        let units = self
            .manager()
            .await?
            .list_units_by_patterns(vec![], vec![pattern.to_string()])
            .await
            .with_context(|| format!("listing systemd units matching {pattern}"))?;
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
        let path = self
            .manager()
            .await?
            .load_unit(name.to_string())
            .await
            .with_context(|| format!("loading unit {name}"))?;
        // Uncached: a stale ActiveState is worse than one more D-Bus round trip.
        let unit = UnitProxy::builder(self.conn().await?)
            .path(path)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .with_context(|| format!("creating a proxy for {name}"))?;
        let ctx = || format!("reading the state of {name}");
        Ok(UnitState {
            load_state: unit.load_state().await.with_context(ctx)?,
            active_state: unit.active_state().await.with_context(ctx)?,
            sub_state: unit.sub_state().await.with_context(ctx)?,
            need_daemon_reload: unit.need_daemon_reload().await.with_context(ctx)?,
        })
    }

    async fn unit_details(&self, name: &str) -> anyhow::Result<UnitDetails> {
        let path = self
            .manager()
            .await?
            .load_unit(name.to_string())
            .await
            .with_context(|| format!("loading unit {name}"))?;
        let conn = self.conn().await?;
        let unit = UnitProxy::builder(conn)
            .path(path.clone())
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        let service = ServiceProxy::builder(conn)
            .path(path)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        // Each property is optional: a unit systemd has just unloaded answers some of them
        // with errors, and `gear status` shows what there is.
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
    }

    async fn run_job(&self, action: Action, name: &str) -> anyhow::Result<JobResult> {
        let manager = self.manager().await?;
        // Listen before queueing the job, or a fast job's JobRemoved could be missed.
        let mut removed = manager
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
        while let Some(signal) = removed.next().await {
            let args = signal.args().context("reading a JobRemoved signal")?;
            if *args.job() == job {
                return Ok(match args.result().as_str() {
                    "done" => JobResult::Done,
                    other => JobResult::Other(other.to_string()),
                });
            }
        }
        anyhow::bail!("the system bus closed while waiting for the {action:?} job of {name}")
    }

    async fn reset_failed(&self, name: &str) -> anyhow::Result<()> {
        match self
            .manager()
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
    }

    async fn reload(&self) -> anyhow::Result<()> {
        self.manager()
            .await?
            .reload()
            .await
            .context("reloading systemd (daemon-reload)")
    }

    async fn start_transient(
        &self,
        name: &str,
        properties: &[Property],
    ) -> anyhow::Result<JobResult> {
        use zbus::{OwnedVariant, Variant};
        let manager = self.manager().await?;
        let mut removed = manager
            .receive_job_removed()
            .await
            .context("subscribing to systemd job signals")?;
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
        let job = manager
            .start_transient_unit(name.to_string(), "fail".to_string(), props, vec![])
            .await
            .with_context(|| format!("asking systemd to start transient unit {name}"))?;
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
        // administrator made.
        self.manager()
            .await?
            .enable_unit_files(vec![name.to_string()], false, false)
            .await
            .map(drop)
            .with_context(|| format!("enabling {name}"))
    }
}
