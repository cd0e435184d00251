//! Every page of the file used exactly once, walked raw: the page accounting's fast path
//! ([`super::super::page_accounting`]), which falls back to its `dbstat` walk (and its
//! messages) on anything but a clean answer.

use super::{Raw, RawFile, Tree, Unreadable, Walk, u32_at, varint};

/// SQLite's lock-byte page starts at this file offset; the page holding it is never used.
const PENDING_BYTE: u64 = 0x4000_0000;

impl RawFile {
    /// Whether every page of the file is used exactly once: by one of the b-trees rooted at
    /// `roots` (their pages and overflow pages), by the freelist (its trunk and leaf pages,
    /// as many as the header counts), or as the lock-byte page.
    ///
    /// # Errors
    /// [`Unreadable`] on any page used twice or never, any page or cell this reader does not
    /// read, a freelist whose length is not the header's, or an auto-vacuum header field: the
    /// caller then walks the pages through SQLite, whose messages say what is wrong.
    pub(crate) fn pages_used_once(&self, roots: &[u32]) -> Raw<()> {
        let mut used = Used(vec![false; self.pages as usize + 1]);
        let lock_byte = PENDING_BYTE / self.page_size as u64 + 1;
        if let Ok(page) = u32::try_from(lock_byte)
            && page <= self.pages
        {
            used.claim(page)?;
        }
        let mut walk = Walk::new(self);
        for &root in roots {
            tree(&mut walk, &mut used, root, 0)?;
        }
        self.freelist(&mut walk, &mut used)?;
        if used.0.iter().skip(1).all(|&u| u) {
            Ok(())
        } else {
            Err(Unreadable("a page never used"))
        }
    }

    /// Claims the freelist's pages, which must be as many as the header says.
    fn freelist(&self, walk: &mut Walk<'_>, used: &mut Used) -> Raw<()> {
        let mut header = vec![0u8; self.page_size];
        walk.fetch(1, &mut header)?;
        // Auto-vacuum fields: the planner leaves such files to the whole check, and the
        // dbstat path has the message for an inconsistent one.
        if u32_at(&header, 52)? != 0 || u32_at(&header, 64)? != 0 {
            return Err(Unreadable("auto-vacuum fields set"));
        }
        let mut trunk = u32_at(&header, 32)?;
        let expected = u64::from(u32_at(&header, 36)?);
        let mut counted = 0u64;
        let mut page = vec![0u8; self.page_size];
        let room = (self.usable / 4).saturating_sub(2);
        while trunk != 0 {
            used.claim(trunk)?;
            counted += 1;
            walk.fetch(trunk, &mut page)?;
            let leaves = u32_at(&page, 4)? as usize;
            if leaves > room {
                return Err(Unreadable("a freelist trunk with too many leaves"));
            }
            for i in 0..leaves {
                used.claim(u32_at(&page, 8 + 4 * i)?)?;
                counted += 1;
            }
            trunk = u32_at(&page, 0)?;
        }
        if counted == expected {
            Ok(())
        } else {
            Err(Unreadable("a freelist of another length than the header's"))
        }
    }
}

/// One flag per page, page 1 at index 1.
struct Used(Vec<bool>);

impl Used {
    /// Marks `page` used; an error when it is out of the file or used already (which also
    /// ends any cycle).
    fn claim(&mut self, page: u32) -> Raw<()> {
        match self.0.get_mut(page as usize) {
            Some(flag) if page > 0 && !*flag => {
                *flag = true;
                Ok(())
            }
            Some(_) if page > 0 => Err(Unreadable("a page used twice")),
            _ => Err(Unreadable("a page number out of the file")),
        }
    }
}

/// Claims the pages of the b-tree page `number` at `depth`, its overflow pages and its
/// children's.
fn tree(walk: &mut Walk<'_>, used: &mut Used, number: u32, depth: usize) -> Raw<()> {
    used.claim(number)?;
    let page = walk.read(number, depth)?;
    let at = if number == 1 { 100 } else { 0 };
    let kinds = match page.get(at) {
        Some(0x02 | 0x0a) => [0x02, 0x0a],
        Some(0x05 | 0x0d) => [0x05, 0x0d],
        _ => return Err(Unreadable("a page of an unexpected type")),
    };
    let header = Walk::header(&page, number, kinds)?;
    let (interior, tree_kind) = (header.kind == kinds[0], kinds[0] == 0x02);
    for i in 0..header.cells {
        let mut at = Walk::cell(&page, &header, i)?;
        if interior {
            tree(walk, used, u32_at(&page, at)?, depth + 1)?;
            at += 4;
            if !tree_kind {
                // A table's interior cell is a child and a key: no payload.
                continue;
            }
        }
        let (size, next) = varint(&page, at)?;
        at = next;
        let kind = if tree_kind {
            Tree::Index
        } else {
            // A table leaf cell: the rowid before the payload.
            at = varint(&page, at)?.1;
            Tree::Table
        };
        overflow(walk, used, &page, at, size, kind)?;
    }
    if interior {
        tree(walk, used, header.right, depth + 1)?;
    }
    walk.buffers[depth] = page;
    Ok(())
}

/// Claims the overflow pages of a payload of `size` bytes at `at` of `page`, if it spills.
fn overflow(
    walk: &mut Walk<'_>,
    used: &mut Used,
    page: &[u8],
    at: usize,
    size: u64,
    kind: Tree,
) -> Raw<()> {
    let file = walk.file;
    let local = file.local(kind, size);
    if page.get(at..at + local).is_none() {
        return Err(Unreadable("a cell runs off its page"));
    }
    if local as u64 == size {
        return Ok(());
    }
    let room = (file.usable - 4) as u64;
    let pages = (size - local as u64).div_ceil(room);
    if pages > u64::from(file.pages) {
        return Err(Unreadable("a payload larger than the file"));
    }
    let mut next = u32_at(page, at + local)?;
    let mut buffer = std::mem::take(&mut walk.overflow_page);
    buffer.resize(file.page_size, 0);
    for _ in 0..pages {
        used.claim(next)?;
        walk.count_page(next)?;
        walk.fetch(next, &mut buffer)?;
        next = u32_at(&buffer, 0)?;
    }
    walk.overflow_page = buffer;
    Ok(())
}
