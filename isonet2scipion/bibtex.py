"""
@article{Liu2025IsoNet2,
  title = "IsoNet2 determines cellular structures at submolecular resolution without averaging",
  author = "Liu, Yun-Tao and Fan, Hongcheng and Jih, Jonathan and Tran, Liam and Zhang, Xiaoying and Zhou, Z. Hong",
  journal = "Brief communication (preprint)",
  year = "2025",
  note = "Code: https://github.com/IsoNet-cryoET/IsoNet2",
  url = "https://github.com/IsoNet-cryoET/IsoNet2"
}
"""
