"""gitcache's own object writers: git objects written at disk speed, big files in chunks.

libgit2 deflates every object at zlib's default level (~40 MB/s on data that does not
compress) and writes each as a loose file. Here (docs/format.md, "Objects"):

- `deflate.py`: per object, isal level 1 when a sample compresses, else stored blocks;
- `loose.py`: a loose object written by us (temporary file, link, read-only);
- `pack.py`: many small objects as one pack with its version-2 index;
- `chunking.py`: where a big file is cut (FastCDC) and the sizes that decide it;
- `stream.py`: a file stored in one pass, whole or as chunk blobs;
- `writer.py`: `ObjectWriter`, what GitRepo uses: which writer an object goes to, the
  chunks of each file it stored.

Nothing here imports pygit2: reads (is an object there?) come in as callables.
"""
