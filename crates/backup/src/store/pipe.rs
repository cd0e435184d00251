//! Streams between blocking code (compression, decompression) and the object store's async
//! client: uploads that start as a single conditional PUT and turn into a multipart upload
//! past [`SINGLE_PUT_MAX`], and downloads read chunk by chunk.

use std::{
    io::{self, Read, Write},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart, path::Path,
};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{Error, Result, stream::CHUNK};

/// Objects up to this size are uploaded with one conditional PUT (`If-None-Match: *`); larger
/// ones with a multipart upload, after checking that the key is free.
pub(crate) const SINGLE_PUT_MAX: usize = 16 << 20;

/// Chunks in flight between the blocking writer and the uploader.
const DEPTH: usize = 4;

enum Message {
    Data(Bytes),
    /// The writer closed cleanly: what was sent is the whole object.
    End,
}

/// Why an upload stopped, shared so the blocking writer reports the store's error instead of
/// a bare broken pipe.
type Failure = Arc<Mutex<Option<String>>>;

fn failure_text(failure: &Failure) -> Option<String> {
    failure
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// The blocking half of an upload.
pub(crate) struct PipeWriter {
    tx: mpsc::Sender<Message>,
    buf: Vec<u8>,
    failure: Failure,
}

impl PipeWriter {
    fn send(&mut self, message: Message) -> io::Result<()> {
        self.tx.blocking_send(message).map_err(|_| {
            io::Error::other(
                failure_text(&self.failure).unwrap_or_else(|| "the upload stopped".to_owned()),
            )
        })
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.send(Message::Data(chunk))
    }

    pub(crate) fn close(mut self) -> Result<()> {
        self.send_buffer()
            .and_then(|()| self.send(Message::End))
            .map_err(|e| Error::Internal(format!("upload: {e}")))
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The async half of an upload: the task that sends the bytes to the store.
pub(crate) struct PipeUpload {
    task: JoinHandle<Result<()>>,
}

impl PipeUpload {
    pub(crate) async fn commit(self) -> Result<()> {
        self.task
            .await
            .map_err(|e| Error::Internal(format!("an upload task failed: {e}")))?
    }

    pub(crate) async fn abort(self) {
        // Without its End message the task aborts the multipart upload by itself; waiting lets
        // it finish doing so.
        let _ = self.task.await;
    }
}

/// Starts uploading to `path`; `describe` names the object in errors.
pub(crate) fn upload(
    store: Arc<dyn ObjectStore>,
    path: Path,
    describe: String,
) -> (PipeWriter, PipeUpload) {
    let (tx, mut rx) = mpsc::channel(DEPTH);
    let failure: Failure = Arc::default();
    let task_failure = Arc::clone(&failure);
    let task = tokio::spawn(async move {
        // The receiver lives until the failure is recorded, so the writer reports it.
        let result = run_upload(store, path, &describe, &mut rx).await;
        if let Err(e) = &result {
            *task_failure
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(crate::error_chain(e));
        }
        drop(rx);
        result
    });
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            failure,
        },
        PipeUpload { task },
    )
}

async fn run_upload(
    store: Arc<dyn ObjectStore>,
    path: Path,
    describe: &str,
    rx: &mut mpsc::Receiver<Message>,
) -> Result<()> {
    let mut buffered: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    let mut multipart: Option<WriteMultipart> = None;
    loop {
        match rx.recv().await {
            Some(Message::Data(chunk)) => {
                size += chunk.len();
                if let Some(upload) = multipart.as_mut() {
                    upload
                        .wait_for_capacity(DEPTH)
                        .await
                        .map_err(|e| super::s3::store_error("upload", describe, e))?;
                    upload.put(chunk);
                } else {
                    buffered.push(chunk);
                    if size > SINGLE_PUT_MAX {
                        multipart =
                            Some(start_multipart(&store, &path, describe, &mut buffered).await?);
                    }
                }
            }
            Some(Message::End) => {
                return match multipart {
                    Some(upload) => upload
                        .finish()
                        .await
                        .map(|_| ())
                        .map_err(|e| super::s3::store_error("upload", describe, e)),
                    None => {
                        let payload = PutPayload::from_iter(buffered);
                        let options = PutOptions {
                            mode: PutMode::Create,
                            ..PutOptions::default()
                        };
                        match store.put_opts(&path, payload, options).await {
                            Ok(_) => Ok(()),
                            Err(object_store::Error::AlreadyExists { .. }) => {
                                Err(Error::ObjectExists {
                                    object: describe.to_owned(),
                                })
                            }
                            Err(e) => Err(super::s3::store_error("upload", describe, e)),
                        }
                    }
                };
            }
            None => {
                // The writer went away without closing: whatever was sent is not the object.
                if let Some(upload) = multipart {
                    let _ = upload.abort().await;
                }
                return Err(Error::Internal(format!(
                    "the upload of {describe} was abandoned"
                )));
            }
        }
    }
}

async fn start_multipart(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    describe: &str,
    buffered: &mut Vec<Bytes>,
) -> Result<WriteMultipart> {
    // A multipart upload cannot be made conditional through this client: check that the key
    // is free first (keys of large objects are unique per backup, chosen under the lock).
    match store.head(path).await {
        Ok(_) => {
            return Err(Error::ObjectExists {
                object: describe.to_owned(),
            });
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(super::s3::store_error("inspect", describe, e)),
    }
    let upload = store
        .put_multipart(path)
        .await
        .map_err(|e| super::s3::store_error("start uploading", describe, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
    for chunk in buffered.drain(..) {
        writer.put(chunk);
    }
    Ok(writer)
}

/// The blocking half of a download.
pub(crate) struct PipeReader {
    rx: mpsc::Receiver<std::result::Result<Bytes, String>>,
    current: Bytes,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Streams the body of a GET into a [`PipeReader`].
pub(crate) fn download(result: object_store::GetResult, describe: String) -> PipeReader {
    let (tx, rx) = mpsc::channel(DEPTH);
    tokio::spawn(async move {
        let mut body = result.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| crate::error_chain(&super::s3::store_error("download", &describe, e)));
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    PipeReader {
        rx,
        current: Bytes::new(),
    }
}
