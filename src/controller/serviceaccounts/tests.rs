use super::*;

fn ns(name: &str, version: u64, terminating: bool) -> Object {
    let mut o = object(
        Kind::Namespace,
        ObjectMeta {
            name: name.into(),
            resource_version: Some(version.to_string()),
            ..Default::default()
        },
        json!({}),
    );
    if terminating {
        o.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
    }
    o
}

fn account(namespace: &str, name: &str, uid: &str, role: Option<&str>) -> Object {
    let mut meta = ObjectMeta {
        name: name.into(),
        namespace: Some(namespace.into()),
        uid: Some(uid.into()),
        resource_version: Some("5".into()),
        ..Default::default()
    };
    if let Some(r) = role {
        meta.annotations.insert(ROLE_ANNOTATION.into(), r.into());
    }
    object(Kind::ServiceAccount, meta, json!({}))
}

/// The Token and Secret a mint for `a` writes, as stored objects at version 9.
fn minted(a: &Object, role: Role) -> (Object, Object) {
    let action = Action::Mint {
        account: a.key().expect("key"),
        version: 5,
        uid: a.metadata.uid.clone().unwrap_or_default(),
        role,
        token: None,
        secret: None,
    };
    let ops = ops(&action).expect("ops");
    let obj = |op: &Op| match op {
        Op::Put { object, .. } => {
            let mut o: Object = serde_json::from_slice(object).expect("object");
            o.metadata.resource_version = Some("9".into());
            o
        }
        other => panic!("{other:?}"),
    };
    (obj(&ops[1]), obj(&ops[2]))
}

fn run(
    namespaces: &[Object],
    accounts: &[Object],
    tokens: &[Object],
    secrets: &[Object],
) -> Vec<Action> {
    let tokens = tokens
        .iter()
        .map(|t| (t.metadata.name.clone(), t.clone()))
        .collect();
    let secrets = secrets
        .iter()
        .map(|s| {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            ((ns, s.metadata.name.clone()), s.clone())
        })
        .collect();
    decide(&Observed {
        namespaces,
        accounts,
        tokens: &tokens,
        secrets: &secrets,
    })
}

fn mint_of(a: &Object, role: Role, token: Option<u64>, secret: Option<u64>) -> Action {
    Action::Mint {
        account: a.key().expect("key"),
        version: 5,
        uid: a.metadata.uid.clone().unwrap_or_default(),
        role,
        token,
        secret,
    }
}

/// What: namespaces, accounts, tokens, secrets, and the actions wanted.
type Case = (
    &'static str,
    Vec<Object>,
    Vec<Object>,
    Vec<Object>,
    Vec<Object>,
    Vec<Action>,
);

#[test]
fn decides_defaults_and_tokens() {
    let web = account("default", "web", "u1", None);
    let (tok, sec) = minted(&web, Role::View);
    let mut other_secret = sec.clone();
    other_secret.metadata.owner_references.clear();
    let mut stale_token = tok.clone();
    stale_token.metadata.owner_references[0].uid = "old".into();
    let mut wrong_secret = sec.clone();
    wrong_secret
        .body
        .insert("data".into(), json!({"token": encode_base64(b"x.y")}));
    let editor = account("default", "web", "u1", Some("edit"));
    let cases: Vec<Case> = vec![
        (
            "a namespace without default gets one, fenced on its version",
            vec![ns("default", 3, false), ns("shop", 4, false)],
            vec![account("default", "default", "d", None)],
            vec![],
            vec![],
            vec![Action::CreateDefault {
                namespace: "shop".into(),
                version: 4,
            }],
        ),
        (
            "a terminating namespace gets none, and no tokens",
            vec![ns("gone", 4, true)],
            vec![web.clone()],
            vec![],
            vec![],
            vec![],
        ),
        (
            "minted: nothing to do",
            vec![ns("default", 3, false)],
            vec![account("default", "default", "d", None), web.clone()],
            vec![tok.clone()],
            vec![sec.clone()],
            vec![],
        ),
        (
            "the Token was deleted: minted again, the Secret replaced at its version",
            vec![ns("default", 3, false)],
            vec![account("default", "default", "d", None), web.clone()],
            vec![],
            vec![sec.clone()],
            vec![mint_of(&web, Role::View, None, Some(9))],
        ),
        (
            "the Secret holds another token: minted again",
            vec![ns("default", 3, false)],
            vec![account("default", "default", "d", None), web.clone()],
            vec![tok.clone()],
            vec![wrong_secret],
            vec![mint_of(&web, Role::View, Some(9), Some(9))],
        ),
        (
            "the role annotation changed: minted again with it",
            vec![ns("default", 3, false)],
            vec![account("default", "default", "d", None), editor.clone()],
            vec![tok.clone()],
            vec![sec.clone()],
            vec![mint_of(&editor, Role::Edit, Some(9), Some(9))],
        ),
        (
            "a user's Secret under the name is left alone",
            vec![ns("default", 3, false)],
            vec![account("default", "default", "d", None), web.clone()],
            vec![],
            vec![other_secret],
            vec![],
        ),
        (
            "a deleted namesake's Token waits for garbage collection",
            vec![ns("default", 3, false)],
            vec![account("default", "default", "d", None), web.clone()],
            vec![stale_token],
            vec![],
            vec![],
        ),
        (
            "an admin role (stored before the rule) gets no token",
            vec![ns("default", 3, false)],
            vec![
                account("default", "default", "d", None),
                account("default", "boss", "u2", Some("admin")),
            ],
            vec![],
            vec![],
            vec![],
        ),
    ];
    for (what, namespaces, accounts, tokens, secrets, want) in cases {
        let mut got = run(&namespaces, &accounts, &tokens, &secrets);
        // The default's own mint is not what these cases are about.
        got.retain(|a| !matches!(a, Action::Mint { account, .. } if account.name == "default"));
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn an_account_without_a_token_gets_one() {
    let web = account("default", "web", "u1", None);
    let got = run(
        &[ns("default", 3, false)],
        std::slice::from_ref(&web),
        &[],
        &[],
    );
    assert_eq!(
        got,
        vec![
            Action::CreateDefault {
                namespace: "default".into(),
                version: 3
            },
            mint_of(&web, Role::View, None, None)
        ]
    );
}

#[test]
fn a_mint_is_fenced_and_owned() {
    let web = account("shop", "web", "u1", Some("edit"));
    let ops = ops(&mint_of(&web, Role::Edit, None, Some(7))).expect("ops");
    assert_eq!(
        ops[0],
        Op::Check {
            key: web.key().expect("key"),
            version: 5
        }
    );
    let (tok, sec) = minted(&web, Role::Edit);
    assert_eq!(tok.metadata.name, "serviceaccount.shop.web");
    assert_eq!(sec.metadata.name, "web-token");
    assert_eq!(sec.metadata.namespace.as_deref(), Some("shop"));
    for o in [&tok, &sec] {
        let r = o.metadata.controller_ref().expect("owned");
        assert_eq!((r.kind.as_str(), r.uid.as_str()), ("ServiceAccount", "u1"));
    }
    assert_eq!(sec.body["type"], TOKEN_SECRET_TYPE);
    let plain = secret_token(&sec).expect("token in the Secret");
    let body: TokenBody = crate::resource::types::Body::from_object(&tok).expect("token body");
    assert_eq!(body.spec.role, Role::Edit);
    assert_eq!(
        crate::resource::token::stored_hash(&plain),
        Some(body.spec.secret_sha256)
    );
    match &ops[2] {
        Op::Put { precondition, .. } => assert_eq!(*precondition, Precondition::Version(7)),
        other => panic!("{other:?}"),
    }
    match &ops[1] {
        Op::Put { precondition, .. } => assert_eq!(*precondition, Precondition::MustNotExist),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pass_is_bounded() {
    let namespaces: Vec<Object> = (0..WRITES_PER_PASS + 10)
        .map(|i| ns(&format!("n{i}"), 1, false))
        .collect();
    assert_eq!(run(&namespaces, &[], &[], &[]).len(), WRITES_PER_PASS);
}
