//! `--help` and usage errors.

use crate::support::run;

#[tokio::test]
async fn help_names_the_commands_env_vars_examples_and_exit_codes() {
    let out = run(&["--help"], &[]).await;
    assert_eq!(out.code, 0);
    for needle in [
        "webhooks",
        "send",
        "KNOLYX_API_URL",
        "KNOLYX_API_KEY",
        "KNOLYX_PROJECT_ID",
        "KNOLYX_WEBHOOK_TOKEN",
        "knolyx-webhook send course-completed --url http://localhost:3000/webhooks/knolyx --token $KNOLYX_WEBHOOK_TOKEN --times 2",
        "Exit codes:",
        "3  transport failure",
        "inbox",
        "KNOLYX_WEBHOOK_INBOX",
    ] {
        assert!(out.stdout.contains(needle), "--help lacks {needle:?}");
    }

    let out = run(&["inbox", "--help"], &[]).await;
    assert_eq!(out.code, 0);
    for needle in [
        "list",
        "show",
        "retry",
        "purge",
        "--all-dead",
        "KNOLYX_WEBHOOK_INBOX",
        "Exit codes:",
    ] {
        assert!(out.stdout.contains(needle), "inbox --help lacks {needle}");
    }
    for (command, flags) in [
        (
            "list",
            &["--state", "--limit", "--json", "--database-url", "--table"][..],
        ),
        (
            "show",
            &["--json", "--body", "--database-url", "--table"][..],
        ),
        ("retry", &["--all-dead", "--database-url", "--table"][..]),
        (
            "purge",
            &["--older-than", "72h", "--database-url", "--table"][..],
        ),
    ] {
        let out = run(&["inbox", command, "--help"], &[]).await;
        assert_eq!(out.code, 0);
        for flag in flags {
            assert!(
                out.stdout.contains(flag),
                "inbox {command} --help lacks {flag}"
            );
        }
    }

    for needle in [
        "knolyx-webhook sandbox --api-key dev-key --state sandbox.json",
        "knolyx-webhook sandbox trigger course-completed",
        "--allow-local",
    ] {
        let out = run(&["--help"], &[]).await;
        assert!(out.stdout.contains(needle), "--help lacks {needle:?}");
    }
    for (args, flags) in [
        (
            &["sandbox", "--help"][..],
            &[
                "--port",
                "8900",
                "--api-key",
                "--state",
                "--strict",
                "--json",
                "trigger",
                "/public/api/v1/webhook",
                "Walkthrough",
                "Exit codes",
            ][..],
        ),
        (
            &["sandbox", "trigger", "--help"][..],
            &[
                "--data-file",
                "--id",
                "--api-url",
                "--retry-schedule",
                "200ms,500ms,1s,2s",
                "--no-retry",
                "--duplicate-rate",
                "--attempt-timeout",
                "--json",
            ][..],
        ),
        (
            &["webhooks", "create", "--help"][..],
            &["--allow-local"][..],
        ),
    ] {
        let out = run(args, &[]).await;
        assert_eq!(out.code, 0);
        for flag in flags {
            assert!(out.stdout.contains(flag), "{args:?} lacks {flag}");
        }
    }

    let out = run(&["send", "--help"], &[]).await;
    assert_eq!(out.code, 0);
    for flag in [
        "--url",
        "--token",
        "--id",
        "--times",
        "--concurrency",
        "--data-file",
        "--json",
        "KNOLYX_WEBHOOK_TOKEN",
    ] {
        assert!(out.stdout.contains(flag), "send --help lacks {flag}");
    }
}

#[tokio::test]
async fn help_never_shows_secret_values_from_the_environment() {
    let env = [
        ("KNOLYX_API_KEY", "api-key-do-not-print"),
        ("KNOLYX_WEBHOOK_TOKEN", "token-do-not-print"),
    ];
    let env = [
        env[0],
        env[1],
        ("KNOLYX_WEBHOOK_INBOX", "postgres://u:db-do-not-print@h/d"),
    ];
    for args in [
        &["webhooks", "create", "--help"][..],
        &["send", "--help"][..],
        &["inbox", "list", "--help"][..],
        &["sandbox", "trigger", "--help"][..],
    ] {
        let out = run(args, &env).await;
        assert_eq!(out.code, 0);
        assert!(!out.all_output().contains("do-not-print"));
    }
}

#[tokio::test]
async fn usage_errors_exit_2() {
    // Missing configuration: clap names the flag and the variable.
    let out = run(&["webhooks", "list"], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--api-url"), "{}", out.stderr);

    // Unknown event type: the valid ones are listed, nothing is sent.
    let out = run(
        &[
            "send",
            "course-finished",
            "--url",
            "http://127.0.0.1:9/x",
            "--token",
            "t",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 2);
    for name in [
        "PING",
        "COURSE_COMPLETED",
        "COURSE_STARTED",
        "COURSE_PAYMENT_RECEIVED",
        "BUNDLE_PAYMENT_RECEIVED",
        "--data-file",
    ] {
        assert!(
            out.stderr.contains(name),
            "the error lacks {name}: {}",
            out.stderr
        );
    }

    // Missing token.
    let out = run(&["send", "ping", "--url", "http://127.0.0.1:9/x"], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--token"));

    // Zero deliveries make no sense.
    let out = run(
        &[
            "send",
            "ping",
            "--url",
            "http://127.0.0.1:9/x",
            "--token",
            "t",
            "--times",
            "0",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 2);

    // A data file that is not JSON.
    let out = run(
        &[
            "send",
            "x",
            "--url",
            "http://127.0.0.1:9/x",
            "--token",
            "t",
            "--data-file",
            "/nonexistent/file.json",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("/nonexistent/file.json"));
}
