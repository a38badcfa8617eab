//! Creating and replacing objects through the API: admission, the
//! immutable-field guard and the retries of a write that lost a race with
//! a controller or a quota charge.

use super::*;

pub(super) async fn create(
    s: ApiState,
    kind: Kind,
    ns: Option<String>,
    body: Bytes,
    dry: DryRun,
) -> ApiResult<Response> {
    let url = UrlScope {
        kind,
        namespace: ns.as_deref(),
        name: None,
    };
    let mut obj = object_from_body(&body, url)?;
    let key = obj
        .key()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "unknown kind"))?;
    namespaces::admit(&s, &key, &HashSet::new()).await?;
    user_set_precondition(&s, &key)?;
    ServiceAddresses::default().assign(&s, &key, &mut obj)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut obj = obj.clone();
        let mut admission = admission::Admission::default();
        admission.admit(&s, &key, &mut obj)?;
        let charges = admission.ops();
        let charged = !charges.is_empty();
        let status = super::crds::with_write(&s, &key, &obj)?;
        let mut ops = vec![put_op(
            key.clone(),
            obj,
            crate::store::Precondition::MustNotExist,
        )?];
        ops.extend(status);
        ops.extend(charges);
        match commit(&s, Command { ops }, dry).await {
            // Another pod took quota meanwhile: charge again from the new figures.
            Err(StoreError::Txn(TxnError::Conflict { .. }))
                if charged && attempt < APPLY_ATTEMPTS =>
            {
                s.store.barrier().await?;
            }
            r => {
                // The object as its last op left it (a definition's status write).
                let body = r?
                    .into_iter()
                    .rev()
                    .find(|o| o.key == key)
                    .map(|o| o.object)
                    .unwrap_or_default();
                return Ok((
                    StatusCode::CREATED,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response());
            }
        }
    }
}

pub(super) async fn create_any(
    State(s): State<ApiState>,
    Path(plural): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    create(s, kind_of(&plural)?, None, body, DryRun::No).await
}

pub(super) async fn create_ns(
    State(s): State<ApiState>,
    Path((ns, plural)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    create(s, kind_of(&plural)?, Some(ns), body, DryRun::No).await
}

pub(super) async fn replace(
    s: ApiState,
    key: ObjectKey,
    body: Bytes,
    dry: DryRun,
) -> ApiResult<Response> {
    let url = UrlScope {
        kind: key.kind,
        namespace: Some(&key.namespace),
        name: Some(&key.name),
    };
    // Before the body is read: a controlled set's body (its owner
    // reference) is not something a user may write at all.
    let set = user_set_precondition(&s, &key)?;
    let obj = object_from_body(&body, url)?;
    namespaces::admit(&s, &key, &HashSet::new()).await?;
    // A resourceVersion in the body makes the replace a compare-and-set.
    let users = match obj.metadata.resource_version.as_deref() {
        Some(rv) => Some(crate::store::Precondition::Version(rv.parse().map_err(
            |_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("metadata.resourceVersion: {rv:?} is not a number"),
                )
            },
        )?)),
        None => None,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut obj = obj.clone();
        ServiceAddresses::default().assign(&s, &key, &mut obj)?;
        admission::Admission::default().admit(&s, &key, &mut obj)?;
        let precondition = match (&users, &set) {
            (Some(p), _) => *p,
            // Replacing what is not there stays a 404, as for every kind.
            (None, Some(crate::store::Precondition::MustNotExist) | None) => {
                crate::store::Precondition::MustExist
            }
            (None, Some(p)) => *p,
        };
        let fenced = guard_immutable(&s, &key, &obj, precondition)?;
        // Only a fence of this node's own making is retried: the user's
        // resourceVersion, or the set's owner, decides for itself.
        let ours = users.is_none() && set.is_none() && fenced.1;
        let status = super::crds::with_write(&s, &key, &obj)?;
        let mut ops = vec![put_op(key.clone(), obj, fenced.0)?];
        ops.extend(status);
        match commit(&s, Command { ops }, dry).await {
            Err(StoreError::Txn(TxnError::Conflict { .. })) if ours && attempt < APPLY_ATTEMPTS => {
                s.store.barrier().await?;
            }
            r => {
                let body = r?
                    .into_iter()
                    .next_back()
                    .map(|o| o.object)
                    .unwrap_or_default();
                return Ok((
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response());
            }
        }
    }
}

/// Whether a write is only a dry run (Kubernetes' `dryRun=All`): decided
/// in full, admission included, and not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DryRun {
    No,
    All,
}

impl DryRun {
    /// A request's `dryRun`: `All`, or none; anything else is named.
    pub(super) fn parse(v: Option<&str>) -> Result<DryRun, String> {
        match v {
            None => Ok(DryRun::No),
            Some("All") => Ok(DryRun::All),
            Some(v) => Err(format!(
                "dryRun: Unsupported value: {v:?}: supported values: \"All\""
            )),
        }
    }
}

/// Writes `cmd`, or, in a dry run, decides on this node's replica what it
/// would do (`Store::preview`).
pub(super) async fn commit(
    s: &ApiState,
    cmd: Command,
    dry: DryRun,
) -> Result<Vec<crate::store::OpOutcome>, StoreError> {
    match dry {
        DryRun::No => s.store.write(cmd).await,
        DryRun::All => s.store.preview(&cmd).await,
    }
}

/// Refuses a write that changes a field its kind holds immutable once the
/// object exists (see immutable.rs), naming it. The write is then made
/// conditional on the object checked, so no other write slips a change in
/// between; the bool says whether that fence is new.
pub(super) fn guard_immutable(
    s: &ApiState,
    key: &ObjectKey,
    obj: &Object,
    precondition: crate::store::Precondition,
) -> ApiResult<(crate::store::Precondition, bool)> {
    if !immutable::has_rules(key.kind) {
        return Ok((precondition, false));
    }
    let Some(live) = s.store.get(key)? else {
        return Ok((precondition, false));
    };
    immutable::check(key.kind, &live, obj)
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{key}: {m}")))?;
    Ok(match precondition {
        crate::store::Precondition::None | crate::store::Precondition::MustExist => (
            crate::store::Precondition::Version(live.resource_version()),
            true,
        ),
        p => (p, false),
    })
}

pub(super) async fn replace_one(
    State(s): State<ApiState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let key = ObjectKey::new(kind_of(&plural)?, &ns, &name);
    replace(s, key, body, DryRun::No).await
}

pub(super) async fn replace_namespace(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    replace(
        s,
        ObjectKey::new(Kind::Namespace, "", &name),
        body,
        DryRun::No,
    )
    .await
}
