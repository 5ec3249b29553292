"""The offline toy world (rendered textured shapes), its zero-shot tasks and the tiny CLIP ``toyclip``.

Modules: ``world`` (renderer and splits), ``captions``, ``tokenizer``, ``datasets`` (toy zero-shot sets),
``pretrain`` (training recipe), ``backbone`` (``load_toyclip``), ``evaluate`` (LR zero-shot protocol),
``lrtk0_data`` (HR images for LR-token training) and ``cli`` (``lr0fm toy``). Import them directly; this
package file stays free of heavy imports.
"""
