//! Several `lineage run` processes in one consumer group on tansu: partitions
//! move between them through kills, scaling, a frozen zombie and a
//! rebalance inside a commit, and every offset still lands exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use lineage::cli::generate::{Generated, generate};
use lineage::commit::Commit;
use lineage::partition::{Owner, TopicPartition};

use crate::pipeline_support::{
    Broker, Lineage, Paths, Store, assert_exactly_once, assert_no_staged_files_left, ends,
    generate_args, read_output, wait_committed, wait_or,
};

const PARTITIONS: i32 = 6;
const TOPIC: &str = "events";

/// Instances of one pipeline: one group, one set of paths, a log each.
struct Group {
    broker: Broker,
    paths: Paths,
    id: String,
}

/// One replica; its subtask index plays the StatefulSet ordinal.
struct Instance {
    run: Lineage,
    subtask: u32,
    log: Log,
}

/// What one subtask logged, over all its restarts.
struct Log {
    subtask: u32,
    path: PathBuf,
}

impl Log {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// What it logged at exit: `stopped consumed=N ...`.
    fn consumed(&self) -> u64 {
        let log = self.text();
        let line = log
            .lines()
            .rfind(|l| l.contains("stopped consumed="))
            .unwrap_or_else(|| panic!("subtask {} logged no summary", self.subtask));
        line.split("consumed=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Whether it gave up anything it had consumed: partitions lost,
    /// fenced, or left out of a checkpoint.
    fn dropped_anything(&self) -> bool {
        let log = self.text();
        [
            "lost=true",
            "partitions fenced",
            "upload is gone",
            "left out of the checkpoint",
        ]
        .iter()
        .any(|n| log.contains(n))
    }
}

impl Group {
    fn new(store: Store) -> Self {
        let broker = Broker::start();
        broker.create_topic(TOPIC, PARTITIONS);
        Self {
            broker,
            paths: Paths::on(store),
            id: format!("scale-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn start(&self, subtask: u32, env: &[(&str, &str)]) -> Instance {
        let subtask_text = subtask.to_string();
        let mut all = vec![
            ("KAFKA_GROUP_ID", self.id.as_str()),
            ("SUBTASK_INDEX", subtask_text.as_str()),
        ];
        all.extend_from_slice(env);
        let log = self.log(subtask);
        let run = Lineage::start_logging_to(&self.broker, TOPIC, &self.paths, &all, &log.path);
        Instance { run, subtask, log }
    }

    fn log(&self, subtask: u32) -> Log {
        Log {
            subtask,
            path: self.paths.file(&format!("subtask-{subtask}.log")),
        }
    }

    /// Produces `count` records at `rate`/s in the background.
    fn produce(&self, count: u64, rate: f64) -> JoinHandle<Generated> {
        let args = generate_args(&self.broker, TOPIC, 0, count, 0.1, rate);
        std::thread::spawn(move || generate(&args, None, None).expect("produce"))
    }

    /// Produces at `rate`/s in the background until the sender is dropped
    /// or sent to: for schedules whose length tansu's rounds of assignment
    /// decide.
    fn produce_until_stopped(
        &self,
        rate: f64,
    ) -> (JoinHandle<Generated>, crossbeam_channel::Sender<()>) {
        let mut args = generate_args(&self.broker, TOPIC, 0, 0, 0.1, rate);
        args.count = None;
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let producer =
            std::thread::spawn(move || generate(&args, Some(stopped), None).expect("produce"));
        (producer, stop)
    }

    fn commits(&self) -> Vec<Commit> {
        self.paths.commits()
    }

    /// Who owns each partition now, by the log.
    fn owners(&self) -> BTreeMap<i32, Owner> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let Ok(loaded) = runtime.block_on(self.paths.commit_log().load()) else {
            return BTreeMap::new();
        };
        loaded
            .state
            .partitions
            .iter()
            .filter_map(|(tp, p)| Some((tp.partition, p.owner.clone()?)))
            .collect()
    }

    fn subtasks_owning(&self) -> BTreeSet<u32> {
        self.owners().values().map(|o| o.subtask).collect()
    }

    fn wait_until(&self, what: &str, instances: &[Instance], mut ready: impl FnMut() -> bool) {
        wait_or(what, Duration::from_secs(120), &mut ready, || {
            let mut text = format!("owners: {:?}\n", self.owners());
            for i in instances {
                let log = i.log.text();
                let lines: Vec<&str> = log.lines().collect();
                text += &format!(
                    "--- subtask {} ---\n{}\n",
                    i.subtask,
                    lines[lines.len().saturating_sub(30)..].join("\n")
                );
            }
            text
        });
    }

    /// Waits for the whole topic in the log, stops every instance
    /// gracefully and checks exactly once; returns the records checked.
    fn finish(&self, producer: JoinHandle<Generated>, instances: &mut Vec<Instance>) -> usize {
        let produced = producer.join().expect("producer");
        assert_eq!(produced.failed, 0);
        let total = produced.records as usize;
        let contents = self.broker.contents(TOPIC, PARTITIONS, total);
        wait_committed(&self.paths, TOPIC, &ends(&contents));
        for instance in std::mem::take(instances) {
            let status = instance.run.terminate();
            assert!(
                status.success(),
                "subtask {} did not stop cleanly: {status}\n{}",
                instance.subtask,
                instance.log.text()
            );
        }
        let (kept, dropped) = assert_exactly_once(&contents, &read_output(&self.paths));
        assert_eq!(kept + dropped, total);
        assert_only_owners_committed(&self.commits());
        assert_no_staged_files_left(&self.paths);
        total
    }
}

/// Every range in the log was committed by the partition's owner of the
/// time (the latest claim before it), and ranges of a partition follow each
/// other without a gap or an overlap.
fn assert_only_owners_committed(commits: &[Commit]) {
    let mut owner: BTreeMap<TopicPartition, Owner> = BTreeMap::new();
    let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for c in commits {
        for claim in &c.claims {
            owner.insert(claim.source.clone(), c.owner.clone());
            let at = next.entry(claim.source.clone()).or_insert(claim.next);
            assert_eq!(
                *at, claim.next,
                "commit {}: claim of {} at {}",
                c.seq, claim.source, claim.next
            );
        }
        for r in &c.ranges {
            assert_eq!(
                owner.get(&r.source),
                Some(&c.owner),
                "commit {} by {} holds {} {}..={}, owned by someone else",
                c.seq,
                c.owner,
                r.source,
                r.first,
                r.last
            );
            let at = next.get_mut(&r.source).expect("claimed before committed");
            assert_eq!(
                *at, r.first,
                "commit {}: {} leaves a gap or overlaps",
                c.seq, r.source
            );
            *at = r.last + 1;
        }
    }
}

/// Rebalances and claims a test went through, for the record: counted over
/// every instance's log (a restarted subtask appends to its log).
fn report(test: &str, total: usize, group: &Group) {
    let logs: String = (0..3).map(|k| group.log(k).text()).collect();
    let commits = group.commits();
    let count = |needle: &str| logs.matches(needle).count();
    eprintln!(
        "{test}: {total} records exactly once; {} assignments, {} revocations, {} claim commits, {} fences, {} commits",
        count("rebalance: partitions assigned"),
        count("rebalance: partitions revoked"),
        commits.iter().filter(|c| !c.claims.is_empty()).count(),
        count("partitions fenced: another owner"),
        commits.len()
    );
}

#[test]
fn three_instances_survive_a_kill_9_and_a_restart() {
    let group = Group::new(Store::Local);
    let producer = group.produce(60_000, 3_000.0);
    let mut instances: Vec<Instance> = (0..3).map(|k| group.start(k, &[])).collect();
    group.wait_until("three instances owning partitions", &instances, || {
        group.subtasks_owning().len() == 3
    });

    instances.remove(1).run.kill();
    group.wait_until(
        "the killed instance's partitions to move",
        &instances,
        || !group.subtasks_owning().contains(&1),
    );
    instances.push(group.start(1, &[]));
    group.wait_until(
        "the restarted instance to own partitions",
        &instances,
        || group.subtasks_owning().contains(&1),
    );

    let total = group.finish(producer, &mut instances);
    report("kill -9", total, &group);
}

#[test]
fn scaling_one_to_three_to_two_under_load_commits_before_handing_over() {
    let group = Group::new(Store::Local);
    let producer = group.produce(60_000, 3_000.0);
    let mut instances = vec![group.start(0, &[])];
    group.wait_until(
        "one instance owning every partition",
        &instances[..1],
        || group.owners().len() == PARTITIONS as usize,
    );
    instances.push(group.start(1, &[]));
    instances.push(group.start(2, &[]));
    group.wait_until("three instances owning partitions", &instances, || {
        group.subtasks_owning().len() == 3
    });
    let leaving = instances.pop().expect("three");
    let status = leaving.run.terminate();
    assert!(status.success(), "scaling down: {status}");
    // tansu 0.6 now and then leaves a member without partitions after a
    // cooperative round, so only the handover itself is waited for.
    group.wait_until(
        "the partitions of the instance that left to move",
        &instances,
        || {
            let owners = group.owners();
            owners.len() == PARTITIONS as usize && owners.values().all(|o| o.subtask != 2)
        },
    );
    let total = group.finish(producer, &mut instances);
    report("scale 1-3-2", total, &group);

    // Partitions were given up only after what was consumed for them was
    // committed: an instance that dropped nothing committed every record
    // it consumed, none was left for the next owner to consume again.
    assert!(
        group
            .log(0)
            .text()
            .contains("rebalance: partitions revoked"),
        "the first instance gave partitions up"
    );
    let commits = group.commits();
    for subtask in 0..3 {
        let log = group.log(subtask);
        if log.dropped_anything() {
            eprintln!(
                "subtask {subtask} dropped records it had consumed (fenced or lost); not counted"
            );
            continue;
        }
        let committed: u64 = commits
            .iter()
            .filter(|c| c.owner.subtask == subtask)
            .flat_map(|c| &c.ranges)
            .map(|r| r.records)
            .sum();
        assert_eq!(
            log.consumed(),
            committed,
            "subtask {subtask} consumed records it never committed"
        );
    }
}

#[test]
fn a_frozen_zombie_commits_nothing_of_what_moved_and_rejoins() {
    // On S3, where the new owner aborts the zombie's open uploads under it.
    let group = Group::new(Store::Moto);
    let producer = group.produce(45_000, 1_500.0);
    // The zombie-to-be holds one of its commits open just before the
    // commit point; it is frozen there, so that when it wakes its first act
    // is to commit ranges of partitions that have moved.
    let mut instances: Vec<Instance> = (0..2).map(|k| group.start(k, &[])).collect();
    group.wait_until("two instances owning partitions", &instances, || {
        group.subtasks_owning().len() == 2
    });
    // Every commit of it is held, so that whenever it owns partitions a
    // hold of a commit with their ranges comes (tansu 0.6 now and then
    // takes a new member's partitions away again in a second round).
    instances.push(group.start(2, &[("LINEAGE_FAILPOINTS", "after-seal=sleep:3000@*")]));
    group.wait_until("three instances owning partitions", &instances, || {
        group.subtasks_owning().len() == 3
    });
    let zombie = group
        .owners()
        .into_values()
        .find(|o| o.subtask == 2)
        .expect("subtask 2 owns partitions");
    let held_by_zombie = || -> BTreeSet<i32> {
        group
            .owners()
            .into_iter()
            .filter(|(_, o)| *o == zombie)
            .map(|(p, _)| p)
            .collect()
    };
    let holds = || {
        instances[2]
            .log
            .text()
            .matches("failpoint: holding")
            .count()
    };
    let mut held = BTreeSet::new();
    let mut seen = holds();
    group.wait_until(
        "the zombie to hold a commit while it owns partitions",
        &instances,
        || {
            let now = holds();
            if now > seen {
                held = held_by_zombie();
                seen = now;
            }
            !held.is_empty()
        },
    );

    // Frozen past the session timeout: the group moves its partitions, the
    // others claim them and commit ranges of them. One is enough for its
    // held commit to be refused (tansu 0.6 now and then leaves a dead
    // member's partition where it was).
    let frozen_at = group.commits().len() as u64;
    instances[2].run.freeze();
    let moved = || {
        let commits = group.commits();
        let owners = group.owners();
        held.iter().any(|p| {
            owners.get(p).is_some_and(|o| *o != zombie)
                && commits.iter().any(|c| {
                    c.seq > frozen_at
                        && c.owner != zombie
                        && c.ranges.iter().any(|r| r.source.partition == *p)
                })
        })
    };
    group.wait_until(
        "the zombie's partitions to be taken and committed by others",
        &instances,
        moved,
    );
    let rounds = instances[2]
        .log
        .text()
        .matches("rebalance: partitions assigned")
        .count();
    instances[2].run.thaw();

    // It finds out (lost at its next heartbeat, fenced by the log, or its
    // uploads gone), drops what it held, and rejoins the group: a new
    // assignment round (tansu 0.6 may leave it without partitions).
    group.wait_until("the zombie to rejoin", &instances, || {
        let log = instances[2].log.text();
        log.matches("rebalance: partitions assigned").count() > rounds
            && instances[2].log.dropped_anything()
    });
    assert!(instances[2].run.is_running(), "the zombie stays up");
    let log = instances[2].log.text();
    let woke = log.find("failpoint: holding").expect("held");
    assert!(
        log[woke..].contains("partitions fenced: another owner took them"),
        "the log refused the zombie's commit:\n{log}"
    );
    assert!(
        instances[2].log.dropped_anything(),
        "the zombie noticed it had lost its partitions:\n{}",
        instances[2].log.text()
    );
    // Everything the zombie held when it froze was dropped, not committed:
    // checked over the whole log by `finish` (every range by its owner of
    // the time), and no file of its is visible uncommitted.
    let total = group.finish(producer, &mut instances);
    report("zombie", total, &group);
}

/// Holds one commit of the first instance open at `point` while a second
/// instance joins: the rebalance must wait for it, and the partitions that
/// move must be committed by the first instance before the second claims
/// them.
fn rebalance_inside_a_commit(point: &str) {
    let group = Group::new(Store::Local);
    let producer = group.produce(40_000, 3_000.0);
    let hold = format!("{point}=sleep:8000@10");
    let first = group.start(0, &[("LINEAGE_FAILPOINTS", hold.as_str())]);
    group.wait_until(
        "the commit to be held",
        std::slice::from_ref(&first),
        || first.log.text().contains("failpoint: holding"),
    );
    let second = group.start(1, &[]);
    let mut instances = vec![first, second];
    group.wait_until("two instances owning partitions", &instances, || {
        group.subtasks_owning().len() == 2
    });
    let total = group.finish(producer, &mut instances);
    report(
        &format!("rebalance inside a commit at {point}"),
        total,
        &group,
    );

    let log = group.log(0).text();
    let at = |needle: &str, from: usize| {
        log[from..]
            .find(needle)
            .map(|i| i + from)
            .unwrap_or_else(|| panic!("no {needle:?} after byte {from} of:\n{log}"))
    };
    let held = at("failpoint: holding", 0);
    let revoked = at("rebalance: partitions revoked", held);
    let committed = at("checkpoint committed", held);
    let given_up = at("rebalance: partitions given up", held);
    assert!(
        revoked < committed,
        "the rebalance landed inside the held commit"
    );
    assert!(
        committed < given_up,
        "partitions were given up only after the held commit finished"
    );
    assert!(
        !group.log(0).dropped_anything(),
        "nothing was fenced or lost:\n{log}"
    );
    // And the second instance started each partition it got exactly where
    // the first one's commits ended: `finish` checked the claims line up.
}

#[test]
fn a_rebalance_before_the_commit_point_waits_for_the_commit() {
    rebalance_inside_a_commit("after-seal");
}

#[test]
fn a_rebalance_after_the_commit_point_waits_for_publication() {
    rebalance_inside_a_commit("after-commit-log-write");
}

/// A broker that assigns a partition to two members at once (tansu 0.6
/// does, now and then): the other member's claim fences this one, and if
/// Kafka keeps assigning the partition here, this one claims it back from
/// the log after the session timeout instead of skipping it for good. The
/// other claim is written into the log by the test, as a member that
/// claimed and then went away would leave it.
#[test]
fn a_partition_fenced_while_kafka_still_assigns_it_is_claimed_again() {
    fenced_while_assigned(Store::Local, &[], "fenced, still assigned");
}

/// The same with every commit's reply lost (the write lands, the attempt
/// fails and is retried): the retry finds its commit and must still report
/// what that commit fenced, or the fenced partition is neither dropped nor
/// claimed again, and its files are left staged.
#[test]
fn a_retried_commit_still_drops_what_it_fenced() {
    fenced_while_assigned(
        Store::Local,
        &[("LINEAGE_FAILPOINTS", "after-commit-log-write=error@*")],
        "fenced, every commit retried",
    );
}

/// As above on S3 with store faults, and every start of a multipart upload
/// answered only on its second try (the first reply lost after the store
/// made the upload): fenced files are aborted with every upload at their
/// keys, so that none is left open.
#[test]
fn a_fence_on_s3_with_faults_and_retried_upload_starts_leaves_no_upload_open() {
    fenced_while_assigned(
        Store::Moto,
        &[
            ("LINEAGE_FAILPOINTS", "after-commit-log-write=error@*"),
            (
                "LINEAGE_STORE_FAULTS",
                "rate=0.05,stall=200ms,lose=POST:/lineage/it/output:uploads,lose=POST:/lineage/it/dropped:uploads",
            ),
        ],
        "fenced on S3 with faults",
    );
}

fn fenced_while_assigned(store: Store, env: &[(&str, &str)], what: &str) {
    let group = Group::new(store);
    let producer = group.produce(20_000, 2_000.0);
    let mut instances = vec![group.start(0, env)];
    group.wait_until(
        "the instance to own every partition",
        &instances[..1],
        || group.owners().len() == PARTITIONS as usize,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let log = group.paths.commit_log();
    let taken = TopicPartition {
        topic: TOPIC.into(),
        partition: 3,
    };
    let other = Owner {
        subtask: 9,
        incarnation: "elsewhere".into(),
    };
    loop {
        let state = runtime.block_on(log.load()).expect("load").state;
        let claim = Commit {
            torn: None,
            seq: state.seq + 1,
            checkpoint: 0,
            owner: other.clone(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            plugin: Default::default(),
            claims: vec![lineage::commit::Claim {
                source: taken.clone(),
                next: state.partition(&taken).expect("claimed").next,
                moved: None,
            }],
            ranges: Vec::new(),
            files: Default::default(),
        };
        if runtime
            .block_on(log.create(&claim))
            .expect("write the claim")
        {
            break;
        }
    }
    group.wait_until("the partition to be claimed back", &instances[..1], || {
        group.owners().get(&3).is_some_and(|o| o.subtask == 0)
    });
    let text = instances[0].log.text();
    let fenced = text
        .find("partitions fenced")
        .expect("fenced by the other claim");
    assert!(
        text[fenced..].contains("claiming them again from the commit log"),
        "{text}"
    );
    let total = group.finish(producer, &mut instances);
    report(what, total, &group);
}

/// A claimer that stalls between its claim and the recovery of what the
/// partitions' earlier owners staged (held there, then frozen with SIGSTOP
/// past the session timeout): the group moves the partitions to another
/// instance, which claims them, writes and commits files, and (held at its
/// commit point for most of each checkpoint) has committed files waiting
/// to be published. When the stalled one resumes, its recovery must find
/// the partitions taken and touch nothing; before, it aborted the files of
/// the later owner, whose publication then failed for ever.
fn a_stalled_claimer(store: Store) {
    let group = Group::new(store);
    // Until the partitions have moved, however long tansu's rounds of
    // assignment take: records must still arrive then.
    let (producer, stop_producing) = group.produce_until_stopped(1_000.0);
    // A rebalance waits for every member to rejoin for up to
    // max.poll.interval.ms (5 minutes by default): one member frozen
    // inside its callback would hold every partition it was given that
    // long.
    let kafka = "session.timeout.ms=6000,heartbeat.interval.ms=500,max.poll.interval.ms=10000";
    let mut instances = vec![group.start(
        1,
        &[
            ("LINEAGE_FAILPOINTS", "after-commit-log-write=sleep:1500@*"),
            ("KAFKA_PROPERTIES", kafka),
        ],
    )];
    group.wait_until(
        "the first instance to own every partition",
        &instances,
        || group.owners().len() == PARTITIONS as usize,
    );
    let stalled = group.start(
        0,
        &[
            ("LINEAGE_FAILPOINTS", "after-claim=sleep:3000"),
            ("KAFKA_PROPERTIES", kafka),
        ],
    );
    group.wait_until("the claimer to stall after its claim", &instances, || {
        stalled.log.text().contains("failpoint: holding")
    });
    stalled.run.freeze();
    let claimed: BTreeSet<i32> = group
        .owners()
        .into_iter()
        .filter(|(_, o)| o.subtask == 0)
        .map(|(p, _)| p)
        .collect();
    assert!(
        !claimed.is_empty(),
        "the stalled instance claimed partitions"
    );
    let at_stall = group.commits().len() as u64;
    group.wait_until(
        "the stalled claimer's partitions to be claimed and committed by the other",
        &instances,
        || {
            group.commits().iter().any(|c| {
                c.seq > at_stall
                    && c.owner.subtask == 1
                    && c.ranges
                        .iter()
                        .any(|r| claimed.contains(&r.source.partition))
            })
        },
    );
    stalled.run.thaw();
    instances.push(stalled);
    group.wait_until("the stalled claimer to resume", &instances, || {
        instances[1]
            .log
            .text()
            .contains("taken by another owner before its recovery finished")
    });
    let _ = stop_producing.send(());
    let total = group.finish(producer, &mut instances);
    report("stalled claimer", total, &group);
}

#[test]
fn a_stalled_claimer_never_touches_a_later_owners_files() {
    a_stalled_claimer(Store::Local);
}

#[test]
fn a_stalled_claimer_on_s3_never_touches_a_later_owners_uploads() {
    a_stalled_claimer(Store::Moto);
}
