//! The bounded sets every collector on one database shares (a tenant's
//! services, a service's routes): the `limit_members` table, one row per
//! member, grown in a transaction holding a per-set advisory lock, so
//! collectors admitting at once never pass a limit together.

use super::PostgresStore;
use super::failure::Failure;
use crate::clock::now_ms;
use crate::model::{Admission, MemberSet};
use crate::store::StoreResult;
use deadpool_postgres::GenericClient;
use std::collections::HashSet;

/// First key of the advisory lock serializing admissions into one set
/// (the second is a hash of the set's name); apart from the migration
/// lock's first key, so the two never meet.
const LOCK_ADMIT: i32 = 0x7669_7402;

impl PostgresStore {
    /// [`Store::admit`](crate::store::Store::admit).
    pub(super) async fn admit_members(
        &self,
        set: MemberSet,
        seed: Vec<String>,
        members: Vec<String>,
        max: usize,
    ) -> StoreResult<Admission> {
        self.retrying(Vec::new(), || self.admit_once(&set, &seed, &members, max))
            .await
    }

    async fn admit_once(
        &self,
        set: &MemberSet,
        seed: &[String],
        members: &[String],
        max: usize,
    ) -> Result<Admission, Failure> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let kind = set.kind.as_str();
        let key = [set.tenant.as_str(), kind, set.owner.as_str()].join("\u{1f}");
        tx.execute(
            &tx.prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .await?,
            &[&LOCK_ADMIT, &key],
        )
        .await?;
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&set.tenant, &kind, &set.owner];
        let count = tx
            .prepare_cached(
                "SELECT count(*) FROM limit_members WHERE tenant = $1 AND kind = $2 AND owner = $3",
            )
            .await?;
        let mut size = tx.query_one(&count, &args).await?.get::<_, i64>(0);
        let now = now_ms();
        let insert = tx
            .prepare_cached(
                "INSERT INTO limit_members (tenant, kind, owner, member, admitted_ms)
                 SELECT $1, $2, $3, m, $5 FROM unnest($4::text[]) AS m
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        if size == 0 && !seed.is_empty() {
            let n = tx
                .execute(&insert, &[&set.tenant, &kind, &set.owner, &seed, &now])
                .await?;
            size = n as i64;
        }
        let present: HashSet<String> = tx
            .query(
                &tx.prepare_cached(
                    "SELECT member FROM limit_members
                     WHERE tenant = $1 AND kind = $2 AND owner = $3 AND member = ANY($4)",
                )
                .await?,
                &[&set.tenant, &kind, &set.owner, &members],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut admitted: Vec<String> = present.iter().cloned().collect();
        let room = (max as i64).saturating_sub(size).max(0) as usize;
        let mut fresh: Vec<String> = Vec::new();
        for m in members {
            if fresh.len() >= room {
                break;
            }
            if !present.contains(m) && !fresh.contains(m) {
                fresh.push(m.clone());
            }
        }
        if !fresh.is_empty() {
            let n = tx
                .execute(&insert, &[&set.tenant, &kind, &set.owner, &fresh, &now])
                .await?;
            size += n as i64;
            admitted.extend(fresh);
        }
        let full = if size >= max as i64 {
            Some(
                tx.query(
                    &tx.prepare_cached(
                        "SELECT member FROM limit_members
                         WHERE tenant = $1 AND kind = $2 AND owner = $3",
                    )
                    .await?,
                    &args,
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            )
        } else {
            None
        };
        tx.commit().await?;
        Ok(Admission {
            admitted,
            size: size.max(0) as usize,
            full,
        })
    }
}
