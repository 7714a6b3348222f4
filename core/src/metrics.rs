//! Prometheus metrics: a registry of counters and gauges, rendered in the text exposition
//! format and served on `/metrics` (with `/healthz`) by [`serve`].
//!
//! Handles are cheap clones of an atomic; asking the registry again for the same name and
//! labels returns the same series, so a lane can look up per-state gauges as states appear.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    series: BTreeMap<Labels, Arc<AtomicU64>>,
}

/// All metrics of a process.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<BTreeMap<&'static str, Family>>>,
}

/// A value that only goes up (f64 stored as bits).
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1.0);
    }

    pub fn add(&self, by: f64) {
        debug_assert!(by >= 0.0, "a counter never goes down");
        update(&self.0, |v| v + by);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A value that is set.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn update(cell: &AtomicU64, f: impl Fn(f64) -> f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some(f(f64::from_bits(bits)).to_bits())
    });
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name{labels}`, created at 0 on first use.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        Counter(self.series(name, help, Kind::Counter, labels))
    }

    /// The gauge `name{labels}`, created at 0 on first use.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Gauge {
        Gauge(self.series(name, help, Kind::Gauge, labels))
    }

    fn series(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicU64> {
        let mut families = self.families.lock().expect("metrics registry poisoned");
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        assert_eq!(family.kind, kind, "metric {name} registered as two kinds");
        let labels: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        family
            .series
            .entry(labels)
            .or_insert_with(|| Arc::new(AtomicU64::new(0f64.to_bits())))
            .clone()
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().expect("metrics registry poisoned");
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.name());
            for (labels, value) in &family.series {
                out.push_str(name);
                if !labels.is_empty() {
                    let rendered: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    let _ = write!(out, "{{{}}}", rendered.join(","));
                }
                let value = f64::from_bits(value.load(Ordering::Relaxed));
                let _ = writeln!(out, " {}", format_value(value));
            }
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

/// Serves `GET /metrics` (the registry) and `GET /healthz` on `listener` until `shutdown`
/// completes.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let registry = registry.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let registry = registry.clone();
            async move { Ok::<_, std::convert::Infallible>(respond(&request, &registry)) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

fn respond<B>(request: &Request<B>, registry: &Registry) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render(),
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".into()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: GET /metrics or /healthz\n".into(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_labels_once_each() {
        let registry = Registry::new();
        let done = registry.counter("calls_total", "Calls done.", &[("outcome", "ok")]);
        done.inc();
        done.add(2.0);
        registry
            .counter("calls_total", "Calls done.", &[("outcome", "ok")])
            .inc();
        registry
            .gauge("depth", "Queue depth.", &[("state", "a\"b")])
            .set(7.5);
        assert_eq!(done.get(), 4.0);
        assert_eq!(
            registry.render(),
            "# HELP calls_total Calls done.\n# TYPE calls_total counter\n\
             calls_total{outcome=\"ok\"} 4\n\
             # HELP depth Queue depth.\n# TYPE depth gauge\ndepth{state=\"a\\\"b\"} 7.5\n"
        );
    }

    #[tokio::test]
    async fn serves_metrics_and_health_over_http() {
        let registry = Registry::new();
        registry.gauge("up_test", "Up.", &[]).set(1.0);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, registry, async {
            let _ = stopped.await;
        }));
        let get = |path: &str| reqwest::get(format!("http://{addr}{path}"));
        let metrics = get("/metrics").await.unwrap();
        assert_eq!(metrics.status(), 200);
        assert!(metrics.text().await.unwrap().contains("up_test 1\n"));
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/nope").await.unwrap().status(), 404);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
