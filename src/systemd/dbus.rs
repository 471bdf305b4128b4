//! [`Systemd`] over D-Bus: `org.freedesktop.systemd1.Manager` through zbus_systemd's proxy.

use anyhow::Context as _;
use tokio::sync::OnceCell;
use zbus_systemd::systemd1::ManagerProxy;

use super::{Systemd, UnitInfo};

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

    async fn manager(&self) -> anyhow::Result<ManagerProxy<'static>> {
        let conn = self
            .conn
            .get_or_try_init(zbus::Connection::system)
            .await
            .context("connecting to the system D-Bus (is systemd running, and are we root?)")?;
        ManagerProxy::new(conn)
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
}
