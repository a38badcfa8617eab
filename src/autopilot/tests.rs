use super::*;
use crate::membership::Meta;
use proptest::prelude::*;

#[test]
fn voter_targets_are_odd() {
    assert_eq!(odd_target(1, 5), 1);
    assert_eq!(odd_target(2, 5), 1);
    assert_eq!(odd_target(3, 5), 3);
    assert_eq!(odd_target(4, 5), 3);
    assert_eq!(odd_target(7, 5), 5);
    assert_eq!(odd_target(7, 3), 3);
    assert_eq!(odd_target(0, 3), 1);
}

const NOW: u64 = 1_000_000;
const GRACE: Duration = Duration::from_secs(30);

fn cfg() -> AutopilotConfig {
    AutopilotConfig {
        dev: false,
        bootstrap_expect: None,
        voters: 5,
        dead_voter_grace: GRACE,
    }
}

fn peer(name: &str) -> String {
    format!("peer-{name}")
}

fn info(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        peer_id: peer(name),
        p2p_addrs: vec![format!("/ip4/127.0.0.1/tcp/70{}", name.len())],
        api_addr: "127.0.0.1:8000".into(),
    }
}

fn id(name: &str) -> NodeId {
    info(name).node_id()
}

/// A gossip member as `info(name)` describes it, in `state` since `ago` seconds.
fn member(name: &str, state: MemberState, ago: u64, leaving: bool) -> MemberView {
    let i = info(name);
    MemberView {
        peer_id: i.peer_id.clone(),
        state,
        incarnation: 0,
        since: NOW - ago,
        since_millis: (NOW - ago) * 1000,
        is_self: name == "a",
        meta: Some(Meta {
            name: i.name,
            peer_id: i.peer_id,
            p2p_addrs: i.p2p_addrs,
            api_addr: i.api_addr,
            leaving,
            ..Meta::default()
        }),
    }
}

fn up(name: &str) -> MemberView {
    member(name, MemberState::Alive, 100, false)
}

/// `a` leads; `voters` and `learners` are Raft's; every member caught up.
fn observed<'a>(view: &'a [MemberView], voters: &[&str], learners: &[&str]) -> Observed<'a> {
    let all: Vec<&str> = voters.iter().chain(learners).copied().collect();
    Observed {
        my_id: id("a"),
        my_peer: "peer-a",
        voters: voters.iter().map(|n| id(n)).collect(),
        nodes: all.iter().map(|n| (id(n), info(n))).collect(),
        view,
        unknown_for: HashMap::new(),
        now_secs: NOW,
        last_index: 5000,
        matched: all.iter().map(|n| (id(n), 5000)).collect(),
    }
}

fn set_voters(names: &[&str]) -> BTreeSet<NodeId> {
    names.iter().map(|n| id(n)).collect()
}

#[test]
fn plan_table() {
    struct Case {
        what: &'static str,
        view: Vec<MemberView>,
        voters: &'static [&'static str],
        learners: &'static [&'static str],
        tweak: fn(&mut Observed<'_>),
        want: Option<Action>,
    }
    let none: fn(&mut Observed<'_>) = |_| {};
    let cases = vec![
        Case {
            what: "a settled three-node cluster: nothing to do",
            view: vec![up("a"), up("b"), up("c")],
            voters: &["a", "b", "c"],
            learners: &[],
            tweak: none,
            want: None,
        },
        Case {
            what: "a live member not in Raft joins as a learner",
            view: vec![up("a"), up("b")],
            voters: &["a"],
            learners: &[],
            tweak: none,
            want: Some(Action::AddLearner {
                id: id("b"),
                info: info("b"),
            }),
        },
        Case {
            what: "new addresses are recorded",
            view: vec![up("a"), up("b"), up("c")],
            voters: &["a", "b", "c"],
            learners: &[],
            tweak: |o| {
                if let Some(n) = o.nodes.get_mut(&id("c")) {
                    n.p2p_addrs = vec!["/ip4/10.0.0.9/tcp/7946".into()];
                }
            },
            want: Some(Action::UpdateNode {
                id: id("c"),
                was: NodeInfo {
                    p2p_addrs: vec!["/ip4/10.0.0.9/tcp/7946".into()],
                    ..info("c")
                },
                info: info("c"),
            }),
        },
        Case {
            what: "a member that left goes at once",
            view: vec![up("a"), up("b"), member("c", MemberState::Left, 1, true)],
            voters: &["a", "b", "c"],
            learners: &[],
            tweak: none,
            want: Some(Action::Remove {
                id: id("c"),
                node: info("c"),
                voter: true,
                why: "it left",
            }),
        },
        Case {
            what: "the leader leaving hands over",
            view: vec![member("a", MemberState::Alive, 1, true), up("b"), up("c")],
            voters: &["a", "b", "c"],
            learners: &[],
            tweak: none,
            want: Some(Action::LeaveVoters { id: id("a") }),
        },
        Case {
            what: "three live members: the two learners become voters",
            view: vec![up("a"), up("b"), up("c")],
            voters: &["a"],
            learners: &["b", "c"],
            tweak: none,
            want: Some(Action::SetVoters {
                from: set_voters(&["a"]),
                to: set_voters(&["a", "b", "c"]),
                target: 3,
            }),
        },
        Case {
            what: "a learner far behind is not promoted",
            view: vec![up("a"), up("b"), up("c")],
            voters: &["a"],
            learners: &["b", "c"],
            tweak: |o| {
                o.matched.insert(id("b"), 0);
                o.matched.insert(id("c"), 0);
            },
            want: None,
        },
        Case {
            what: "a voter down within the grace is waited for",
            view: vec![
                up("a"),
                up("b"),
                member("c", MemberState::Down, 10, false),
                up("d"),
            ],
            voters: &["a", "b", "c"],
            learners: &["d"],
            tweak: none,
            want: None,
        },
        Case {
            what: "a voter down past the grace is replaced by a caught-up learner",
            view: vec![
                up("a"),
                up("b"),
                member("c", MemberState::Down, 31, false),
                up("d"),
            ],
            voters: &["a", "b", "c"],
            learners: &["d"],
            tweak: none,
            want: Some(Action::SetVoters {
                from: set_voters(&["a", "b", "c"]),
                to: set_voters(&["a", "b", "d"]),
                target: 3,
            }),
        },
        Case {
            what: "a dead voter with nobody to replace it is kept",
            view: vec![up("a"), up("b"), member("c", MemberState::Down, 300, false)],
            voters: &["a", "b", "c"],
            learners: &[],
            tweak: none,
            want: None,
        },
        Case {
            what: "a learner down for long is removed",
            view: vec![
                up("a"),
                up("b"),
                up("c"),
                member("d", MemberState::Down, 400, false),
            ],
            voters: &["a", "b", "c"],
            learners: &["d"],
            tweak: none,
            want: Some(Action::Remove {
                id: id("d"),
                node: info("d"),
                voter: false,
                why: "it has been down for long",
            }),
        },
        Case {
            what: "a name back under a new identity removes the old one",
            view: vec![up("a"), up("b"), {
                let mut m = up("c");
                m.peer_id = "peer-c-new".into();
                if let Some(meta) = m.meta.as_mut() {
                    meta.peer_id = "peer-c-new".into();
                }
                m
            }],
            voters: &["a", "b", "c"],
            learners: &[],
            tweak: none,
            want: Some(Action::Remove {
                id: id("c"),
                node: info("c"),
                voter: true,
                why: "its name came back under a new identity (empty data dir)",
            }),
        },
        Case {
            what: "an old identity alive again under a live member's name takes nothing",
            view: vec![up("a"), up("b"), up("c"), {
                let mut m = up("c");
                m.peer_id = "peer-c-old".into();
                if let Some(meta) = m.meta.as_mut() {
                    meta.peer_id = "peer-c-old".into();
                }
                m
            }],
            voters: &["a", "b", "c"],
            learners: &[],
            tweak: none,
            want: None,
        },
    ];
    for c in cases {
        let mut o = observed(&c.view, c.voters, c.learners);
        (c.tweak)(&mut o);
        assert_eq!(plan(&o, &cfg()), c.want, "{}", c.what);
    }
}

/// Applies an action to the observed state as Raft would once committed.
fn apply(o: &mut Observed<'_>, a: &Action) {
    match a {
        Action::AddLearner { id, info } => {
            o.nodes.insert(*id, info.clone());
            o.matched.insert(*id, o.last_index);
        }
        Action::UpdateNode { id, info, .. } => {
            o.nodes.insert(*id, info.clone());
        }
        Action::Remove { id, .. } => {
            o.nodes.remove(id);
            o.voters.remove(id);
        }
        Action::LeaveVoters { id } => {
            o.voters.remove(id);
        }
        Action::SetVoters { to, .. } => o.voters = to.clone(),
    }
}

const NAMES: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

prop_compose! {
    /// Up to seven nodes, `a` the leader (alive, a voter): each other one
    /// alive, suspect or down for some time, a voter, a learner or not in
    /// Raft, caught up or not; `max_voters` 1, 3 or 5.
    fn cluster()(
        states in proptest::collection::vec((0u8..3, 0u64..400, 0u8..3, any::<bool>()), 0..7),
        max_voters in prop_oneof![Just(1usize), Just(3), Just(5)],
    ) -> (Vec<(MemberState, u64, u8, bool)>, usize) {
        let states = states
            .into_iter()
            .map(|(s, ago, raft, caught_up)| {
                let s = match s {
                    0 => MemberState::Alive,
                    1 => MemberState::Suspect,
                    _ => MemberState::Down,
                };
                (s, ago, raft, caught_up)
            })
            .collect();
        (states, max_voters)
    }
}

proptest! {
    #[test]
    fn plan_keeps_the_voters_safe_and_settles((states, max_voters) in cluster()) {
        let mut view = vec![up("a")];
        let mut voters = vec!["a"];
        let mut learners = Vec::new();
        let mut behind = Vec::new();
        for (i, (state, ago, raft, caught_up)) in states.iter().enumerate() {
            let name = NAMES[i + 1];
            view.push(member(name, *state, *ago, false));
            match raft {
                0 => voters.push(name),
                1 => learners.push(name),
                _ => {}
            }
            if !caught_up {
                behind.push(name);
            }
        }
        let cfg = AutopilotConfig { voters: max_voters, ..cfg() };
        let max = odd_target(usize::MAX, max_voters);
        let mut o = observed(&view, &voters, &learners);
        for n in &behind {
            o.matched.insert(id(n), 0);
        }
        // Level-triggered: applying each planned change must come to rest.
        let mut steps = 0;
        while let Some(a) = plan(&o, &cfg) {
            match &a {
                Action::SetVoters { from, to, .. } => {
                    prop_assert!(!to.is_empty());
                    prop_assert!(to.contains(&o.my_id), "the leader demoted itself: {a:?}");
                    prop_assert!(to.iter().all(|v| o.nodes.contains_key(v)), "{a:?}");
                    prop_assert!(to.len() <= max.max(from.len().min(max)), "{a:?}");
                    // Deaths never shrink the voters below the configured size.
                    prop_assert!(to.len() >= from.len().min(max), "{a:?}");
                    // A voter that is up stays, unless the setting shrank.
                    if from.len() <= max {
                        for v in from {
                            let up = o
                                .nodes
                                .get(v)
                                .and_then(|n| o.view.iter().find(|m| m.peer_id == n.peer_id))
                                .is_some_and(|m| m.is_up());
                            prop_assert!(!up || to.contains(v), "live voter dropped: {a:?}");
                        }
                    }
                }
                Action::Remove { id, .. } => prop_assert_ne!(*id, o.my_id),
                Action::LeaveVoters { .. } => prop_assert!(false, "the leader is not leaving"),
                Action::AddLearner { .. } | Action::UpdateNode { .. } => {}
            }
            apply(&mut o, &a);
            steps += 1;
            prop_assert!(steps <= 20, "no fixed point after 20 changes; last {a:?}");
        }
    }
}
