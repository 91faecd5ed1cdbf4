#!/usr/bin/env python
"""Provision, run, inspect and tear down the pipeline on AWS (or moto / LocalStack).

python deploy.py up --dry-run          # per resource: create, change (which), no change; reads only
python deploy.py up --dry-run --account-id 123456789012   # the resources alone; no AWS call
python deploy.py up                    # create or repair (idempotent)
python deploy.py up --schedule "cron(0 6 * * ? *)" --alert-email you@example.com
python deploy.py up --on-arrival       # a run starts when new raw inputs land (not a clock)
python deploy.py up --schedule none --no-alert-email   # back to on demand, no subscription
python deploy.py run                   # upload data + script, crawl, run the job, query
python deploy.py run --workflow        # the same, the crawl and job run by the Glue workflow
python deploy.py status                # each resource, the last crawl, job and workflow run
python deploy.py down --yes            # delete only what `up` made, buckets emptied first
python deploy.py policy               # how the deployer's IAM policy splits into managed policies
python deploy.py policy --part 1 > deployer-1.json  # one part, a managed policy's document
python deploy.py template > stack.yaml   # the same stack as a CloudFormation template
python deploy.py up --endpoint-url http://127.0.0.1:5000   # against moto server

Bucket names are global across AWS accounts, so they carry the account and region:
<prefix>-<account>-<region>-raw, -processed, -scripts, -athena-results. The account is
asked of STS (GetCallerIdentity) once; `up --dry-run`, `down --dry-run` and `policy`
take --account-id instead, and then call nothing.

`up --dry-run` reads the account as `up` does (Get, Describe, List and Head calls only;
nothing is changed) and prints a table: each resource, its name and what `up` would do to
it: create, change (and what: the lines `up` would log), no change, delete (what
--on-arrival made, without the flag), or not ours (the name is taken; `up` would refuse).
With --account-id it reads nothing and the column says `create or repair (not read)`.
--verbose adds every setting of each resource, --json prints the rows as JSON.

`up` and `run` exit 1 without changing anything when one of the deployment's names is
taken by a resource `up` did not create (no managed-by/pipeline-prefix marks, as tags or,
on the Glue database, as parameters); `down` never deletes such a resource.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pipeline import infra
from pipeline.cli import add_target_flags, config_from, run_cli, setup_logging
from pipeline.config import ACCOUNT_PLACEHOLDER, PipelineConfig
from pipeline.errors import DeployError, UsageError, one_line
from pipeline.infra.operations import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_WINDOW,
    Operations,
    email_problem,
    schedule_problem,
)
from pipeline.infra.policies import (
    MANAGED_POLICY_MAX_CHARS,
    deployer_policy_name,
    deployer_policy_parts,
)
from pipeline.infra.shared import partition_for_region
from pipeline.infra.template import render, template
from pipeline.report import page_lines
from pipeline.runner import RunOptions, run, summary_lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = RunOptions()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "run", "status", "down", "policy", "template"))
    add_target_flags(parser, target=False)
    parser.add_argument(
        "--account-id",
        help="policy, --dry-run: the 12-digit account the names are for; up --dry-run then "
        "reads nothing (default: the credentials' account, from STS; a placeholder for the "
        "dry runs of down and run)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be done, changing nothing; up reads the account (read-only "
        "calls) to say per resource create, change or no change; with --account-id, and for "
        "down and run, nothing is called",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="up --dry-run: the rows (resource, name, action, details) as JSON on stdout",
    )
    parser.add_argument(
        "--part",
        type=int,
        help="policy: print this part of the deployer policy (1, 2, ...), each a managed "
        "policy's document; without it, the parts and the commands that attach them",
    )
    parser.add_argument("--yes", action="store_true", help="confirm `down` (it deletes data)")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="up --dry-run: after the table of resources, every setting of each",
    )
    parser.add_argument(
        "--rows", type=int, default=defaults.rows, help="run: sales rows (default %(default)s)"
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=defaults.customers,
        help="run: customers (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="run: seed (default %(default)s)"
    )
    parser.add_argument(
        "--charts-dir",
        type=Path,
        help="run: where the six PNGs go (default screenshots/; with your own files "
        "<lake>/_charts/)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        help="run: where the run's HTML page goes (default: a report folder beside the charts)",
    )
    parser.add_argument("--run-id", help="run: the job's run id (default: a UTC timestamp)")
    parser.add_argument("--sales-path", help="run: your own sales file or folder (or s3://...)")
    parser.add_argument("--customers-path", help="run: your own customers file or folder")
    parser.add_argument(
        "--workflow",
        action="store_true",
        help="run: start the Glue workflow (crawl, then the job) and follow it, "
        "in place of starting the crawler and the job one by one",
    )
    parser.add_argument(
        "--full-rebuild",
        action="store_true",
        help="run: the job rebuilds every output from all raw files, not only what is new",
    )
    parser.add_argument(
        "--schedule",
        help='up: run the workflow on a schedule, a Glue cron expression such as "cron(0 6 * * ? *)" '
        '(UTC), or "none" for on demand only; without it (and without --on-arrival) up keeps '
        "what starts the workflow now (on demand for a new one)",
    )
    parser.add_argument(
        "--on-arrival",
        action="store_true",
        help="up: start the workflow when raw inputs land in the raw bucket (S3 to EventBridge "
        "to a Glue event trigger); not with --schedule",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"up --on-arrival: start a run once this many files have landed "
        f"(1-100, default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--batch-window",
        type=int,
        help=f"up --on-arrival: or this many seconds after the first one "
        f"(1-900, default {DEFAULT_BATCH_WINDOW})",
    )
    parser.add_argument(
        "--alert-email",
        help="up: subscribe this address to the failure and quality alerts (up keeps the "
        "addresses already subscribed)",
    )
    parser.add_argument(
        "--no-alert-email",
        action="store_true",
        help="up: remove the email subscriptions of the alerts topic",
    )
    parser.add_argument(
        "--max-quarantine-rate",
        type=float,
        default=defaults.max_quarantine_rate,
        help="up: the alarm's threshold; run: the verdict's; the largest share of rows read "
        "that may be quarantined (default %(default)s)",
    )
    parser.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="template: yaml or json"
    )
    args = parser.parse_args(argv)
    if (args.sales_path is None) != (args.customers_path is None):
        parser.error("--sales-path and --customers-path go together: give both or neither")
    if args.part is not None and args.command != "policy":
        parser.error("--part goes with `policy`")
    if args.json and not (args.dry_run and args.command == "up"):
        parser.error("--json goes with `up --dry-run`")
    if args.account_id and not (args.dry_run or args.command == "policy"):
        # The other commands act on the credentials' own account: STS says which.
        parser.error("--account-id goes with `policy` or --dry-run")
    if args.schedule is not None and (problem := schedule_problem(args.schedule)):
        parser.error(problem)
    if args.alert_email is not None and (problem := email_problem(args.alert_email)):
        parser.error(f"--alert-email: {problem}")
    if args.alert_email is not None and args.no_alert_email:
        parser.error("--alert-email and --no-alert-email contradict each other: give one")
    if not 0.0 <= args.max_quarantine_rate <= 1.0:
        parser.error("--max-quarantine-rate must be between 0 and 1")
    if args.workflow and args.full_rebuild:
        parser.error("--full-rebuild runs the job directly: leave out --workflow")
    if args.workflow and args.run_id:
        parser.error(
            "--run-id does not go with --workflow: a workflow's job run is named by its job run id"
        )
    return args


def operations(args: argparse.Namespace) -> Operations:
    """up's choices for what starts the workflow, the alert email and the alarm's threshold."""
    return Operations(
        schedule=args.schedule,
        on_arrival=args.on_arrival,
        batch_size=args.batch_size,
        batch_window=args.batch_window,
        alert_email=args.alert_email,
        no_alert_email=args.no_alert_email,
        max_quarantine_rate=args.max_quarantine_rate,
    )


def policy_guide(config: PipelineConfig, count: int) -> list[str]:
    """What `deploy.py policy` prints without --part: the parts and how to attach them."""
    flags = f"--prefix {config.prefix} --region {config.region} --account-id {config.account_id}"
    name = deployer_policy_name(config, "$part")
    partition = partition_for_region(config.region)
    arn = f"arn:{partition}:iam::{config.account_id}:policy/{name}"
    return [
        f"The deploying identity's policy for prefix {config.prefix} comes in {count} parts, "
        f"each a customer managed policy (IAM allows {MANAGED_POLICY_MAX_CHARS:,} characters "
        "per managed policy, 2,048 inline on a user). Create and attach each part:",
        "",
        f"for part in {' '.join(str(i) for i in range(1, count + 1))}; do",
        f"  python deploy.py policy {flags} --part $part > {name}.json",
        f"  aws iam create-policy --policy-name {name} --policy-document file://{name}.json",
        f"  aws iam attach-user-policy --user-name YOUR-USER --policy-arn {arn}",
        "done",
        "",
        "For a role, attach each with: aws iam attach-role-policy --role-name YOUR-ROLE "
        "--policy-arn ...",
    ]


def make_config(args: argparse.Namespace) -> PipelineConfig:
    """Build the aws config from flags; unset flags fall back to env and defaults.

    The account comes from --account-id, else (the dry runs of down and run call
    nothing) a placeholder, else STS.
    """
    if args.account_id:
        return config_from(args, target="aws", account_id=args.account_id)
    if args.dry_run and args.command != "up":
        return config_from(args, target="aws", account_id=ACCOUNT_PLACEHOLDER)
    if not (args.command == "policy" or args.dry_run):
        return config_from(args, target="aws")
    # policy and up --dry-run: where STS cannot be reached, --account-id works offline.
    try:
        return config_from(args, target="aws")
    except (BotoCoreError, ClientError) as exc:
        if args.command == "policy":
            raise DeployError(
                f"could not ask STS for the account the policy is for ({one_line(exc)}); "
                "pass --account-id 123456789012 to print it without calling AWS"
            ) from exc
        raise DeployError(
            f"could not reach AWS to read what up would change ({one_line(exc)}); pass "
            "--account-id 123456789012 for the plan without reading AWS"
        ) from exc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(stream=sys.stderr if args.json else sys.stdout)  # --json: JSON alone
    return run_cli(lambda: _command(args))


def _command(args: argparse.Namespace) -> int:
    if args.command == "up" and (problems := operations(args).problems()):
        # One line, exit 2: --on-arrival with --schedule, batching without --on-arrival, ...
        raise UsageError("; ".join(problems))
    if args.command == "template":
        # Only the template on stdout; the same for every account (names are parameters).
        print(render(template(), args.format), end="")
        return 0
    config = make_config(args)
    if args.command == "policy":
        parts = deployer_policy_parts(
            config, config.account_id, partition_for_region(config.region)
        )
        if args.part is None:
            print("\n".join(policy_guide(config, len(parts))))
        elif 1 <= args.part <= len(parts):
            # JSON only on stdout, so `deploy.py policy --part 1 > f.json` gives the document.
            print(json.dumps(parts[args.part - 1], indent=2))
        else:
            raise UsageError(f"--part {args.part}: the deployer policy has parts 1 to {len(parts)}")
        return 0
    if args.dry_run:
        if args.command == "up":
            if args.account_id:
                result = infra.offline_plan(config, ops=operations(args))
            else:
                result = infra.dry_run(config, ops=operations(args))
            if args.json:
                print(json.dumps(infra.as_json(result, args.verbose), indent=2, default=str))
            else:
                print(infra.format_dry_run(result, verbose=args.verbose))
        elif args.command == "down":
            print("down would delete:")
            print("\n".join(f"  {line}" for line in infra.down_plan(config)))
        elif args.command == "run":
            steps = (
                f"start workflow {config.workflow_name} (crawler {config.crawler_name}, then "
                f"job {config.job_name}) and follow it"
                if args.workflow
                else f"start crawler {config.crawler_name}, start job {config.job_name}"
            )
            print(
                "run would: generate data (or take --sales-path/--customers-path), upload it "
                f"and the job script, {steps}, run the DDL and named queries in workgroup "
                f"{config.workgroup}"
            )
        else:
            print("status reads only; nothing to dry-run")
        return 0

    if args.command == "up":
        changes = infra.up(config, ops=operations(args))
        print(f"up: {len(changes)} change(s)" if changes else "up: everything already in place")
    elif args.command == "status":
        print(infra.format_status(infra.status(config)))
    elif args.command == "down":
        if not args.yes:
            print("down deletes these (pass --yes to confirm):")
            print("\n".join(f"  {line}" for line in infra.down_plan(config)))
            return 1
        deleted = infra.down(config)
        print(f"down: deleted {len(deleted)} resource(s)")
    elif args.command == "run":
        # The same staged runner as `run_pipeline.py --target aws`.
        options = RunOptions(
            rows=args.rows,
            customers=args.customers,
            seed=args.seed,
            sales_path=args.sales_path,
            customers_path=args.customers_path,
            max_quarantine_rate=args.max_quarantine_rate,
            workflow=args.workflow,
            full_rebuild=args.full_rebuild,
            report_dir=args.report_dir,
        )
        if args.charts_dir:
            options.charts_dir = args.charts_dir
        if args.run_id:
            options.run_id = args.run_id
        report = run(config, options)
        print("\n".join([*summary_lines(report), "", *page_lines(report.page)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
