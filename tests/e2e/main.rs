//! End-to-end tests of Jalon: one test binary, modules by topic.

#![allow(clippy::unwrap_used)]

mod aggregates;
mod auth;
mod bad_input;
mod cost_centres;
mod counters;
mod demo;
mod events;
mod finance_feeds;
mod gates;
mod hardening_auth;
mod helpers;
mod import_cli;
mod imports;
mod kpis;
mod leavers;
mod money_limits;
mod observability;
mod organisations;
mod overload;
mod people;
mod portfolio;
mod projects;
mod replicas;
mod scim;
mod server;
mod tenancy;
mod webhooks;
