//! CronJobs and Jobs: the Kubernetes examples' schedules and completion
//! modes, refused by path when wrong.

use super::*;

#[test]
fn cronjobs_need_batch_v1_and_a_valid_schedule() {
    let e = err(CRONJOB);
    assert!(
        e.starts_with("document 1 (CronJob hello): apiVersion: \"batch/v1beta1\""),
        "{e}"
    );
    assert!(e.contains("use \"batch/v1\""), "{e}");
    let v1 = CRONJOB.replace("batch/v1beta1", "batch/v1");
    let p = ok(&v1);
    let c = crate::resource::types::CronJobBody::from_object(&p.objects[0]).unwrap();
    assert_eq!(c.spec.schedule, "* * * * *");
    let e = err(&v1.replace("\"* * * * *\"", "\"* * *\""));
    assert!(e.contains("spec.schedule: \"* * *\" has 3 fields"), "{e}");
    let e = err(&v1.replace("  schedule:", "  timeZone: Moon/Base\n  schedule:"));
    assert!(
        e.contains("spec.timeZone: \"Moon/Base\" is not a time zone"),
        "{e}"
    );
    let e = err(&v1.replace("restartPolicy: OnFailure", "restartPolicy: Always"));
    assert!(
        e.contains(
            "spec.jobTemplate.spec.template.spec.restartPolicy: Always is not allowed in a Job"
        ),
        "{e}"
    );
    let e = err(&v1.replace(
        "    spec:\n      template:",
        "    spec:\n      managedBy: x\n      template:",
    ));
    assert!(e.contains("spec.jobTemplate.spec.managedBy"), "{e}");
    let long = "c".repeat(53);
    let e = err(&v1.replace("name: hello", &format!("name: {long}")));
    assert!(e.contains("at most 52 characters"), "{e}");
}

#[test]
fn indexed_jobs_need_completions() {
    let e = err(&JOB.replace(
        "  backoffLimit: 4",
        "  backoffLimit: 4\n  completionMode: Indexed",
    ));
    assert!(
        e.contains("spec.completions: missing: completionMode Indexed needs completions"),
        "{e}"
    );
    let e = err(&JOB.replace("  backoffLimit: 4", "  completionMode: Sometimes"));
    assert!(e.contains("spec.completionMode"), "{e}");
    ok(&JOB.replace(
        "  backoffLimit: 4",
        "  completions: 3\n  completionMode: Indexed\n  suspend: true",
    ));
}
