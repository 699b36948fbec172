//! Rows as the domain reads them: the reads that the figures' refresh, the
//! unit of work and the operations share. Below all of them: nothing here
//! calls an operation, a change or the portfolio.

pub(crate) mod budgets;
pub(crate) mod kpis;
pub(crate) mod organisations;
pub(crate) mod projects;
